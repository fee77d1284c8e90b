// SPDX-License-Identifier: BSD-2-Clause
// vhost/guest_memory.cpp - placeholder
#include "vhost/guest_memory.hpp"
