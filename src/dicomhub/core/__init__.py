"""The shared kernel: DICOM helpers, de-identification, storage, database, auth, jobs.

Nothing in ``core`` imports a stage (submit, intake, curate, publish, download).
"""
