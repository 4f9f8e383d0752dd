"""The system calls that confine a zygote and its environments (Linux, through ctypes).

Python 3.11 has no `os.unshare`, `os.setns`, `mount(2)` or `prctl(2)`: these wrappers call libc
directly and raise OSError with the errno, like the os module. Imported by the zygote before it
forks, so nothing here costs an import per environment.

What the zygote does per environment (namespaces level):

1. Ahead of time, `unshare(CLONE_NEWPID)`, fork, `setns(own pid namespace)`: the child is PID 1
   of a new PID namespace (pid_namespaces(7)), an init that only reaps orphans.
2. On a spawn, `setns(that namespace)`, fork, `setns(own)`: the runtime is PID 2 there, and
   still the zygote's child (the zygote learns its exit status directly).
3. The runtime, still root: `enter_environment_namespaces` (its own mount and IPC namespaces,
   /tmp and /proc), then `drop_to_user`.

When PID 1 of a namespace ends, the kernel SIGKILLs everything else in it (pid_namespaces(7)):
the zygote kills the init once the runtime has ended, which takes every descendant the
function left, double-forked `setsid()` children included.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import stat
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

# capabilities(7) numbers of the few a zygote keeps.
CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_FOWNER = 3
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_SYS_ADMIN = 21

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    """setns(2)."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2)."""
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def prctl(option: int, value: int) -> None:
    """prctl(2) with one argument."""
    _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(value),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        f"prctl {option}",
    )


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


@functools.lru_cache(maxsize=1)
def _last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap", "rb") as last:
        return int(last.read())


def _permitted_capabilities() -> int:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    low: int = data[0].permitted
    high: int = data[1].permitted
    return low | (high << 32)


def keep_only_capabilities(keep: Iterable[int], *, bounding: bool = True) -> None:
    """Drop every capability but `keep` (of those held) from the effective and permitted sets
    and, with `bounding` and CAP_SETPCAP held, from the bounding set too, so that no exec can
    regain them (capabilities(7)). CAP_SETPCAP goes with the rest."""
    held = _permitted_capabilities()
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    mask &= held
    if bounding and held & (1 << CAP_SETPCAP):
        for cap in range(_last_capability() + 1):
            if not mask & (1 << cap):
                try:
                    prctl(PR_CAPBSET_DROP, cap)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:  # a capability this kernel does not know
                        raise
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0),
        _CapData(mask >> 32, mask >> 32, 0),
    )
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def drop_to_user(uid: int) -> None:
    """Become `uid`/`uid` with no supplementary groups: every capability is gone (a change of
    all uids away from 0 clears them, capabilities(7)). Then allow no regaining through
    set-user-ID programs or file capabilities (PR_SET_NO_NEW_PRIVS) and stay dumpable, so that
    the process still owns its /proc/self (a uid change clears the flag, prctl(2))."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_DUMPABLE, 1)


def drop_capabilities() -> None:
    """When the environment keeps its uid (the edge's, or root in bubblewrap's user namespace
    when the edge is not root): no capability left, none to regain. Root in a user namespace
    keeps CAP_SYS_ADMIN there otherwise, enough to unmount what hides the edge's files."""
    keep_only_capabilities((), bounding=False)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


# Per-mount options of mountinfo, as mount(2) flags.
_MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}


def mounts_under(prefix: str) -> list[tuple[str, int]]:
    """The mount points under `prefix` in this mount namespace, in mount order (a parent
    before what is mounted inside it), each with its ro/nosuid/nodev/noexec flags (proc(5),
    /proc/self/mountinfo: field 5 is the mount point, octal-escaped; field 6 its options)."""
    found: list[tuple[str, int]] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split(" ")
            point = _unescape_mount_path(fields[4])
            if point.startswith(prefix):
                flags = 0
                for option in fields[5].split(","):
                    flags |= _MOUNT_FLAGS.get(option, 0)
                found.append((point, flags))
    return found


def _unescape_mount_path(text: str) -> str:
    # The kernel writes space, tab, newline and backslash as \ooo octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def forbid_new_privileges() -> None:
    """PR_SET_NO_NEW_PRIVS alone."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def enter_environment_namespaces(uid: int | None, tmp_bytes: int) -> None:
    """In the environment's PID 1: a private mount and IPC namespace, /tmp and /proc its own.

    /tmp is a tmpfs bounded like Lambda's ephemeral storage (512 MB by default), owned by the
    environment's uid. Whatever the zygote's view has mounted under /tmp (the code, a Python
    installation or the edge's own source tree, writable directories, masks over the edge's
    files) would be hidden by it: each of those mounts is bound again into the new /tmp, in
    mount order and with the read-only, nosuid, nodev and noexec flags it had. The new /proc
    shows only this PID namespace; /proc/sys stays read-only.
    """
    unshare(CLONE_NEWNS | CLONE_NEWIPC)
    # Nothing mounted here may propagate back to the zygote's view (mount_namespaces(7)).
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # O_PATH descriptors keep what the new /tmp will cover reachable (open(2)).
    kept = [
        (os.open(path, os.O_PATH | os.O_CLOEXEC), path, flags)
        for path, flags in mounts_under("/tmp/")
    ]
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={tmp_bytes},mode=1777{owner}",
    )
    for fd, path, flags in kept:
        # A mount point inside one bound before it is there already (and maybe read-only).
        if not os.path.lexists(path):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(path, mode=0o755)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        if flags:
            # A remount sets every per-mount flag: the ones it had are given again (a mask of
            # /dev/null stays unreadable on its nodev mount).
            mount(None, path, None, MS_BIND | MS_REMOUNT | flags)
        os.close(fd)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("/proc/sys", "/proc/sys", None, MS_BIND | MS_REC)
    mount(None, "/proc/sys", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
