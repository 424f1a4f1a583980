"""The Lambda function behind exportsync's API: CSV uploads, session summaries, presigned URLs."""
