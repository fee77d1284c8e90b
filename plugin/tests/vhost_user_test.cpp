// SPDX-License-Identifier: BSD-2-Clause
// vhost_user_test.cpp - placeholder
#include <gtest/gtest.h>
TEST(Placeholder, Nothing) {}
