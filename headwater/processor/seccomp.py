"""Stage-2 syscall filter: no new programs, no new processes, no internet sockets.

The filter is built once per process by pyseccomp (libseccomp) in the trusted parent and shipped
to the worker as a compiled BPF program; the worker installs it with one `seccomp()` call after
importing what the statement needs and before running it. That keeps libseccomp's loader (which
shells out to `ldconfig`) out of the sandbox and off the latency path.

bubblewrap cannot install this filter for us: it execs the interpreter after installing its
filters, and the filter forbids exec.

It is a deny-list on top of namespaces (the research's pragmatic choice given the syscall breadth
of CPython, numpy and httpx): the namespaces and read-only mounts do the containing, seccomp takes
away the tools to escape them (exec, fork, ptrace, namespace and kernel-module calls).
"""

from __future__ import annotations

import errno
import functools
from typing import NamedTuple

CLONE_THREAD = 0x00010000
AF_INET, AF_INET6 = 2, 10
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1

_DENIED = """
    execve execveat fork vfork ptrace process_vm_readv process_vm_writev mount umount2
    pivot_root chroot unshare setns keyctl add_key request_key bpf perf_event_open userfaultfd
    kexec_load kexec_file_load init_module finit_module delete_module io_uring_setup
    io_uring_enter io_uring_register personality acct swapon swapoff reboot settimeofday
    clock_settime mknod mknodat open_by_handle_at name_to_handle_at
""".split()  # noqa: SIM905 - a word list reads better than one name per line


class SeccompProgram(NamedTuple):
    bpf: bytes  # struct sock_filter[], ready for seccomp(SECCOMP_SET_MODE_FILTER)
    seccomp_nr: int  # the seccomp() syscall number on this architecture


@functools.cache
def build_filter(network: bool) -> SeccompProgram:
    """Compile the filter with libseccomp (parent side, cached per network setting)."""
    from headwater.processor.errors import SandboxUnavailableError  # not in the worker's imports

    try:
        import pyseccomp as sc  # type: ignore[import-untyped]
    except (ImportError, OSError, RuntimeError) as exc:
        raise SandboxUnavailableError(
            f"seccomp is unavailable ({exc}); install libseccomp (Debian: "
            "apt-get install libseccomp2) and the pyseccomp package"
        ) from None
    import tempfile

    eperm = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in _DENIED:
        try:
            rules.add_rule(eperm, name)
        except (OSError, ValueError):  # a syscall this architecture does not have
            continue
    # Threads (numpy, httpx) are clone(CLONE_THREAD); a new process is clone without it.
    rules.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    # clone3 passes its flags in a struct seccomp cannot read; ENOSYS makes glibc use clone.
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if not network:
        rules.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, AF_INET))
        rules.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, AF_INET6))
    with tempfile.TemporaryFile() as file:
        rules.export_bpf(file)
        file.seek(0)
        bpf = file.read()
    return SeccompProgram(bpf, int(sc.resolve_syscall(sc.Arch.NATIVE, "seccomp")))


def install_filter(bpf: bytes, seccomp_nr: int) -> None:
    """Install the filter on every thread of the calling process (worker side).

    TSYNC matters: a library may have started threads while being imported, and a filter
    installed on one thread only would leave them unfiltered.
    """
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    program = SockFprog(len(bpf) // 8, ctypes.addressof(buffer))
    status = libc.syscall(
        ctypes.c_long(seccomp_nr),
        ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(program),
    )
    if status != 0:
        raise OSError(ctypes.get_errno(), f"seccomp(SET_MODE_FILTER) failed (status {status})")
