"""Line ids for hand-made rows: line ids are UUIDs, so a test names a line and gets its id."""

import hashlib
import uuid


def line_uuid(name: str) -> str:
    """The UUID text of `name`'s md5, as the sources make line ids (same name, same id)."""
    return str(uuid.UUID(hashlib.md5(name.encode()).hexdigest()))
