"""Service files for this machine: a systemd unit (system or user) or a launchd plist.

`install` writes or removes them, `systemd_unit` renders the unit, `values` checks and quotes what
goes into either. The CLI uses this package's names.
"""

from exportsync.service.install import (
    LAUNCHD_AGENT_LABEL,
    LAUNCHD_DAEMON_LABEL,
    SYSTEMD_CREDENTIAL_SOURCE,
    SYSTEMD_UNIT,
    InstallResult,
    Manager,
    ServiceError,
    check_paths,
    check_unit_value,
    default_executable,
    default_log_dir,
    default_manager,
    install,
    readable_by,
    render_launchd,
    render_service,
    render_systemd,
    service_path,
    system_account,
    uninstall,
)

__all__ = [
    "LAUNCHD_AGENT_LABEL",
    "LAUNCHD_DAEMON_LABEL",
    "SYSTEMD_CREDENTIAL_SOURCE",
    "SYSTEMD_UNIT",
    "InstallResult",
    "Manager",
    "ServiceError",
    "check_paths",
    "check_unit_value",
    "default_executable",
    "default_log_dir",
    "default_manager",
    "install",
    "readable_by",
    "render_launchd",
    "render_service",
    "render_systemd",
    "service_path",
    "system_account",
    "uninstall",
]
