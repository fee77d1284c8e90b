// SPDX-License-Identifier: BSD-2-Clause
// vhost/vhost_user_proto.cpp - placeholder
