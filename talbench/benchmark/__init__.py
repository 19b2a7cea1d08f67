"""The benchmark tables: their schema (``schema``), the rows to run and their configuration (``rows``), the
``talbench run`` orchestrator (``run``) and the recorded results it writes (``results``)."""
