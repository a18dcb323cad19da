"""The on-device wake word (optional: ``pip install 'hello-device[wake]'``)."""
