"""fraudscore domain package: settings, database, storage, queue and pipeline code."""
