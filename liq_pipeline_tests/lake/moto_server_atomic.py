"""moto's S3 server (`python -m moto.server`) with its conditional writes atomic, as S3's are.

moto checks a PUT's If-None-Match / If-Match and then writes, with nothing between the two on its threaded server:
two writers creating one object at once can both succeed. Seen in CI (a loaded run): the lake lock test's threads
held the lock together and a whole writer's updates were lost. S3 decides a conditional write atomically; one lock
around moto's put_object gives the same answers here. Run as a script:

    python moto_server_atomic.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import functools
import sys
import threading

from moto import server
from moto.s3.responses import S3Response

_WRITES = threading.Lock()


def _atomic(put_object):
    @functools.wraps(put_object)
    def atomic(self, *args, **kwargs):
        with _WRITES:
            return put_object(self, *args, **kwargs)

    return atomic


S3Response.put_object = _atomic(S3Response.put_object)

if __name__ == "__main__":
    server.main(sys.argv[1:])
