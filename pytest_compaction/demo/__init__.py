"""The main job: record, replay offline and validate against the embedded server."""
