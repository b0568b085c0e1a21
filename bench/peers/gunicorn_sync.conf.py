"""gunicorn's defaults, for the peers run "as a plain gunicorn user would".

Without ``-c``, gunicorn loads ``./gunicorn.conf.py`` from the working directory, which at
the repository root is RestEngine's own (gthread, 8 threads, its hooks and secret-key
check). Pass this file instead to get gunicorn's default sync worker::

    gunicorn -c bench/peers/gunicorn_sync.conf.py -w 2 -b 127.0.0.1:P bench.peers.legacy_flask:app
"""

worker_class = "sync"  # gunicorn's default, stated for the reader
# gunicorn's control socket defaults to one path per user, which two instances would fight over.
control_socket_disable = True
