"""Batch runs: many files through one API function, in worker processes or threads, results
as each file finishes (``runner``); lists of inputs and results to resume from (``lists``)."""
