// SPDX-License-Identifier: BSD-2-Clause
// virtqueue_test.cpp - placeholder
#include <gtest/gtest.h>
TEST(Placeholder, Nothing) {}
