// SPDX-License-Identifier: BSD-2-Clause
// vhost/virtqueue.cpp - placeholder
#include "vhost/virtqueue.hpp"
