// SPDX-License-Identifier: BSD-2-Clause
// link/vhost_user_link.cpp - placeholder
