"""What the kernel enforces on the sandbox's child, through ctypes and the standard library only.

- Landlock: reads only of the paths given, writes only of the scratch dir, no exec, no TCP, no signals out.
- seccomp: no sockets of any family, no new processes (threads only), no exec, no namespaces, mounts, ptrace,
  BPF, io_uring, keyrings or identity changes, signals only to the process itself.
- Namespaces: a user namespace whose root is an unprivileged uid outside (nobody when the parent is root), an
  empty network namespace, a PID namespace whose init takes every descendant with it, a mount namespace that
  shows only the interpreter, system libraries, the data file (read-only) and the scratch dir, a fresh /proc.
- Capabilities dropped, so the code holds none even inside its own user namespace.

Each function returns a status (or raises OSError) rather than printing: the child decides what is required.
Self-contained on purpose (the child imports nothing from agentops); imported by path or as agentops.data's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys
from collections.abc import Iterable

SANDBOX_ID_WHEN_ROOT = 65534
"""The uid and gid (nobody, nogroup) outside the user namespace when the parent runs as root: root is exempt
from RLIMIT_NPROC, and a process that is nobody outside cannot read root's files even if every other layer fell."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
        _libc_handle.syscall.restype = ctypes.c_long
    return _libc_handle


def _fail(what: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{what}: {os.strerror(errno)}")


def prctl(option: int, arg: int = 0) -> None:
    if _libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        raise _fail(f"prctl {option}")


PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, _PR_SET_SECCOMP = 24, 47, 4, 22

# -- Landlock ------------------------------------------------------------------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_MAKE_CHAR, _FS_MAKE_SOCK, _FS_MAKE_FIFO, _FS_MAKE_BLOCK, _FS_MAKE_SYM = 1 << 6, 1 << 9, 1 << 10, 1 << 11, 1 << 12
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV


def _fs_rights_for(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or this is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    return max(0, int(_libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def apply_landlock(read_paths: Iterable[str], write_paths: Iterable[str]) -> str:
    """Restrict this thread (and every thread and child it starts later) to the paths given. Returns a status:
    'landlock abi N', or 'unavailable: why'. Call it before any other thread exists."""
    abi = landlock_abi()
    if abi < 1:
        return "unavailable: the kernel has no Landlock"
    libc = _libc()

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    handled = _fs_rights_for(abi)
    attr = RulesetAttr(handled, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
                       _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"unavailable: create_ruleset: {os.strerror(ctypes.get_errno())}"
    read = _FS_READ_FILE | _FS_READ_DIR
    write = handled & ~(_FS_EXECUTE | _FS_MAKE_CHAR | _FS_MAKE_BLOCK | _FS_MAKE_SOCK | _FS_MAKE_FIFO | _FS_MAKE_SYM)
    rules = [(p, read) for p in read_paths] + [(p, write) for p in write_paths] + [("/dev/null", read | write)]
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            if not os.path.isdir(path):
                rights &= _FILE_RIGHTS
            rule = PathBeneathAttr(rights & handled, fd)
            result = libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                  ctypes.c_uint32(0))
            os.close(fd)
            if result < 0:
                return f"unavailable: add_rule {path}: {os.strerror(ctypes.get_errno())}"
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"unavailable: no_new_privs: {os.strerror(ctypes.get_errno())}"
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"unavailable: restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return f"landlock abi {abi}"


# -- seccomp -------------------------------------------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "socket": 41, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
        "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
        "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250, "add_key": 248,
        "request_key": 249, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "name_to_handle_at": 303, "open_by_handle_at": 304, "kcmp": 312, "setuid": 105,
        "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119, "setfsuid": 122,
        "setfsgid": 123, "setgroups": 116, "capset": 126, "personality": 135, "acct": 163, "swapon": 167,
        "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "quotactl": 179, "syslog": 103,
        "vhangup": 153, "iopl": 172, "ioperm": 173, "uselib": 134, "move_pages": 279, "migrate_pages": 256,
        "process_madvise": 440, "clone3": 435, "ioctl": 16, "seccomp": 317},
    "aarch64": {
        "socket": 198, "socketpair": 199, "clone": 220, "execve": 221, "execveat": 281, "kill": 129, "tkill": 130,
        "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424,
        "pidfd_open": 434, "pidfd_getfd": 438, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "keyctl": 219, "add_key": 217, "request_key": 218, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "kcmp": 272, "setuid": 146, "setgid": 144,
        "setreuid": 145, "setregid": 143, "setresuid": 147, "setresgid": 149, "setfsuid": 151, "setfsgid": 152,
        "setgroups": 159, "capset": 91, "personality": 92, "acct": 89, "swapon": 224, "swapoff": 225,
        "reboot": 142, "sethostname": 161, "setdomainname": 162, "quotactl": 60, "syslog": 116, "vhangup": 58,
        "move_pages": 239, "migrate_pages": 238, "process_madvise": 440, "clone3": 435, "ioctl": 29,
        "seccomp": 277},
}
_SIGNAL_CALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
"""Allowed only when their first argument is this process (raise(), pthread_kill() on its own threads)."""
_SPECIAL = {"clone", "clone3", "ioctl", "seccomp", *_SIGNAL_CALLS}
"""Every other name in the table is refused outright (EPERM)."""
_CLONE_THREAD = 0x00010000
_CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
"""ioctls that push input into a terminal (refused even though the child has no terminal)."""
_X32_SYSCALL_BIT = 0x40000000
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_EPERM, _ENOSYS = 1, 38
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24
"""Offsets in struct seccomp_data (the low 32 bits of an argument, little-endian)."""


def seccomp_program(machine: str, own_pid: int) -> list[tuple[int, int, int, int]]:
    """The classic-BPF filter as (code, jt, jf, k) instructions. Jumps name labels, resolved at the end."""
    table = _SYSCALLS[machine]
    code: list[tuple[int, int | str, int | str, int] | str] = [
        (_LD_W_ABS, 0, 0, _ARCH), (_JEQ, 1, 0, _AUDIT_ARCH[machine]), (_RET, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _NR)]
    if machine == "x86_64":
        code.append((_JGE, "deny", 0, _X32_SYSCALL_BIT))
    code += [(_JEQ, "deny", 0, nr) for name, nr in table.items() if name not in _SPECIAL]
    code += [(_JEQ, "enosys", 0, table["clone3"]), (_JEQ, "clone", 0, table["clone"]),
             (_JEQ, "ioctl", 0, table["ioctl"])]
    code += [(_JEQ, "own_pid", 0, table[name]) for name in _SIGNAL_CALLS]
    code += [(_RET, 0, 0, _RET_ALLOW),
             "clone", (_LD_W_ABS, 0, 0, _ARG0), (_JSET, "deny", 0, _CLONE_NEW_ANY),
             (_JSET, "allow", "deny", _CLONE_THREAD),
             "own_pid", (_LD_W_ABS, 0, 0, _ARG0), (_JEQ, "allow", "deny", own_pid & 0xFFFFFFFF),
             "ioctl", (_LD_W_ABS, 0, 0, _ARG1), (_JEQ, "deny", 0, _TIOCSTI), (_JEQ, "deny", "allow", _TIOCLINUX),
             "allow", (_RET, 0, 0, _RET_ALLOW),
             "deny", (_RET, 0, 0, _RET_ERRNO | _EPERM),
             "enosys", (_RET, 0, 0, _RET_ERRNO | _ENOSYS)]
    return _assemble(code)


def _assemble(code: list[tuple[int, int | str, int | str, int] | str]) -> list[tuple[int, int, int, int]]:
    labels: dict[str, int] = {}
    instructions: list[tuple[int, int | str, int | str, int]] = []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)

    def offset(target: int | str, at: int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - at - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"seccomp jump to {target} out of range")
        return distance

    return [(op, offset(jt, i), offset(jf, i), k) for i, (op, jt, jf, k) in enumerate(instructions)]


def install_seccomp_filter(program: list[tuple[int, int, int, int]], machine: str | None = None) -> None:
    """Install `program` on every thread of this process (no_new_privs first). OSError when the kernel refuses."""
    machine = machine or os.uname().machine
    packed = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(packed, len(packed))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    libc = _libc()
    set_mode_filter, tsync = 1, 1
    if libc.syscall(_SYSCALLS[machine]["seccomp"], set_mode_filter, tsync, ctypes.byref(fprog)) == 0:
        return
    if ctypes.get_errno() != _ENOSYS:
        raise _fail("seccomp")
    if libc.prctl(_PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0) != 0:
        raise _fail("prctl(PR_SET_SECCOMP)")


def apply_seccomp() -> str:
    """Install the sandbox's filter on this process. Returns 'seccomp' or 'unavailable: why'."""
    machine = os.uname().machine
    if not sys.platform.startswith("linux") or machine not in _SYSCALLS or sys.byteorder != "little":
        return f"unavailable: no seccomp filter for {sys.platform} {machine}"
    try:
        install_seccomp_filter(seccomp_program(machine, os.getpid()), machine)
    except OSError as exc:
        return f"unavailable: {exc.strerror}"
    return "seccomp"


# -- capabilities --------------------------------------------------------------------------------------------------


def drop_capabilities() -> None:
    """Leave this thread no capability at all (bounding, ambient, effective, permitted, inheritable)."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
        raise _fail("capset")


# -- namespaces and the file view ----------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
SANDBOX_NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_NOATIME, _MS_NODIRATIME, _MS_BIND, _MS_REC, _MS_PRIVATE, _MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
_ST_RELATIME = 4096
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_SYS_MOUNT_SETATTR = 442


def unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        raise _fail("unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    if _libc().mount(encode(source), target.encode(), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        raise _fail(f"mount {target}")


def write_id_maps(pid: int, uid: int, gid: int) -> None:
    """Make uid/gid (outside) the root of `pid`'s new user namespace. An unprivileged caller may map only
    itself, and must give up setgroups first; root may map anyone and keeps setgroups to clear its groups."""
    if os.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w") as handle:
            handle.write("deny")
    for name, outside in (("uid_map", uid), ("gid_map", gid)):
        with open(f"/proc/{pid}/{name}", "w") as handle:
            handle.write(f"0 {outside} 1")


def _symlinks_on(path: str, depth: int = 0) -> list[tuple[str, str]]:
    """Every symlink met on the way to `path` (link, target), so the view can have them too (/lib -> usr/lib)."""
    links: list[tuple[str, str]] = []
    current = "/"
    for part in [p for p in path.split("/") if p]:
        step = os.path.join(current, part)
        if os.path.islink(step) and depth < 8:
            target = os.readlink(step)
            links.append((step, target))
            links += _symlinks_on(os.path.join(os.path.dirname(step), target), depth + 1)
            step = os.path.realpath(step)
        current = step
    return links


class FileView:
    """The only files the child can see: built in the mount namespace, entered by pivot_root in its PID one."""

    def __init__(self, mount_point: str, read_paths: Iterable[str], write_paths: Iterable[str]) -> None:
        """Open every path to show now, with this process's own rights, before it becomes the sandbox's uid."""
        self.mount_point = mount_point
        self.links: list[tuple[str, str]] = []
        self.sources: list[tuple[str, int, str]] = []
        wanted = [(p, "ro") for p in read_paths] + [(p, "dev") for p in DEVICES] + [(p, "rw") for p in write_paths]
        for path, kind in wanted:
            real = os.path.realpath(path)
            try:
                fd = os.open(real, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            self.links += _symlinks_on(os.path.abspath(path))
            self.sources.append((real, fd, kind))

    def build(self, become: tuple[int, int]) -> None:
        """Mount a small tmpfs at mount_point, switch to uid/gid `become` (inside), and bind every path in it."""
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        _mount("tmpfs", self.mount_point, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=4m,uid=0,gid=0")
        os.chdir(self.mount_point)
        with contextlib.suppress(PermissionError):  # an unprivileged parent had to deny setgroups: the child
            os.setgroups([])  # keeps that user's groups
        os.setresgid(*(become[1],) * 3)
        os.setresuid(*(become[0],) * 3)
        for link, target in self.links:
            os.makedirs("." + os.path.dirname(link), exist_ok=True)
            if not os.path.lexists("." + link):
                os.symlink(target, "." + link)
        for real, fd, kind in self.sources:
            here = "." + real
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(here, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(here), exist_ok=True)
                if not os.path.lexists(here):
                    open(here, "w").close()
            _mount(f"/proc/self/fd/{fd}", here, None, _MS_BIND | _MS_REC)
            flags = {"ro": _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "dev": _MS_NOSUID | _MS_NOEXEC,
                     "rw": _MS_NOSUID | _MS_NODEV | _MS_NOEXEC}[kind]
            _mount(None, here, None, _MS_BIND | _MS_REMOUNT | flags | _locked_flags(here))
            _restrict_submounts(here, flags)
            os.close(fd)
        os.makedirs("proc", exist_ok=True)

    @staticmethod
    def enter() -> None:
        """From the PID namespace's init: a fresh /proc (its processes only), then make the view the root."""
        _mount("proc", "proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        pivot = _SYS_PIVOT_ROOT.get(os.uname().machine)
        if pivot is None or _libc().syscall(pivot, b".", b".") != 0:
            raise _fail("pivot_root")
        if _libc().umount2(b".", _MNT_DETACH) != 0:
            raise _fail("umount the old root")
        os.chdir("/")
        _mount(None, "/", None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _locked_flags("/"))


def _restrict_submounts(path: str, flags: int) -> None:
    """The same restrictions on every mount below `path` (mount_setattr, Linux 5.12+; older kernels leave
    submounts as they were, under Landlock where there is Landlock)."""

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                    ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(flags & (_MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC), 0, 0, 0)  # same bit values
    at_fdcwd, at_recursive = -100, 0x8000
    if _libc().syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(at_fdcwd), path.encode(), ctypes.c_uint(at_recursive),
                       ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) != 0 and ctypes.get_errno() != 38:
        raise _fail(f"mount_setattr {path}")


def _locked_flags(path: str) -> int:
    """The flags a bind mount already has (a user namespace may add restrictions, never lift them)."""
    flags = os.statvfs(path).f_flag
    kept = flags & (_MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_NOATIME | _MS_NODIRATIME)
    return kept | (_MS_RELATIME if flags & _ST_RELATIME else 0)
