"""A run as a whole, around the stages: its start and end (``lifecycle``). The workflow's handlers
(``onstart``, ``onsuccess``, ``onerror``) only call into here."""
