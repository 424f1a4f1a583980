"""Service files for this machine: a systemd unit (system or user) or a launchd plist.

`install` writes or removes them, `systemd_unit` renders the unit, `values` checks and quotes what
goes into either. The CLI uses this package's names, which are `install`'s.
"""

from exportsync.service import install as _install
from exportsync.service.install import *  # noqa: F403 - the package's names are install's

__all__ = _install.__all__
