# SPDX-License-Identifier: BSD-2-Clause
"""benchlib - the pieces of scripts/bench/run: processes, namespaces, backends, measures, report."""
