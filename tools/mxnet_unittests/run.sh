#!/bin/bash
# Run MXNet 1.9.1's Python unit tests, unmodified, against the engine (see README.md).
# usage: tools/mxnet_unittests/run.sh MXNET_UNITTEST_DIR [test_X ...]
# Copies this harness, the test files and common.py into $WORKDIR (default
# /tmp/mxtests) and runs each file on its own, printing one summary line per file.
set -u
src=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
work=${WORKDIR:-/tmp/mxtests}
files=${@:-test_autograd test_gluon test_loss test_gluon_trainer test_ndarray test_gluon_data test_optimizer test_init test_metric}
mkdir -p "$work/logs"
cp -r "$here/conftest.py" "$here/shims" "$work/"
cp "$src/common.py" "$work/"
cp "$src"/legacy_ndarray.v0 "$work/" 2>/dev/null   # read by test_ndarray
cd "$work"
for f in $files; do
  cp "$src/$f.py" .
  ENGINE_NUM_THREADS=1 timeout 1200 python -m pytest -q --tb=line -p no:cacheprovider ${PYTEST_ARGS:-} $f.py > logs/$f.log 2>&1
  echo "$f: $(tail -1 logs/$f.log)"
done
