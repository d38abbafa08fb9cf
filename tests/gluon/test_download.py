"""gluon.utils.download / check_sha1 with file:// URLs and a refused local connection (no
network is used)."""
import hashlib
import os

import pytest

from engine.base import MXNetError
from engine.gluon import utils


def test_download_file_url_cache_overwrite_and_hash(tmp_path):
    src = tmp_path / 'weights.params'
    src.write_bytes(b'version 1')
    sha1 = hashlib.sha1(b'version 1').hexdigest()
    assert utils.check_sha1(str(src), sha1) and not utils.check_sha1(str(src), '0' * 40)
    dest = tmp_path / 'cache'
    dest.mkdir()
    got = utils.download(src.as_uri(), path=str(dest), sha1_hash=sha1)
    assert got == str(dest / 'weights.params') and open(got, 'rb').read() == b'version 1'
    src.write_bytes(b'version 2')
    assert open(utils.download(src.as_uri(), path=str(dest)), 'rb').read() == b'version 1'   # cached
    # a cached file whose hash differs is fetched again; overwrite always fetches
    sha2 = hashlib.sha1(b'version 2').hexdigest()
    assert open(utils.download(src.as_uri(), path=str(dest), sha1_hash=sha2), 'rb').read() == b'version 2'
    src.write_bytes(b'version 3')
    assert open(utils.download(src.as_uri(), path=got, overwrite=True), 'rb').read() == b'version 3'


def test_download_failures_are_clear_and_leave_nothing(tmp_path):
    src = tmp_path / 'a.bin'
    src.write_bytes(b'data')
    with pytest.raises(MXNetError, match='does not have the expected SHA-1'):
        utils.download(src.as_uri(), path=str(tmp_path / 'b.bin'), sha1_hash='0' * 40)
    with pytest.raises(MXNetError, match=r'download: cannot fetch file://.*missing\.bin'):
        utils.download((tmp_path / 'missing.bin').as_uri(), path=str(tmp_path))
    # port 1 on the loopback interface refuses the connection: the offline failure mode
    with pytest.raises(MXNetError, match=r'cannot fetch http://127\.0\.0\.1:1/x\.bin .*without network'):
        utils.download('http://127.0.0.1:1/x.bin', path=str(tmp_path), retries=1)
    assert sorted(os.listdir(tmp_path)) == ['a.bin']
