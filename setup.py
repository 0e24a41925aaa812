"""The compiled extensions; everything else is in pyproject.toml.

Both are optional, and Headwater installs and runs without them, only slower:
- `headwater.stream._native` (headwater/stream/_native.c), the stream's C hot paths, needs a C
  compiler; without it the pure-Python twins run (`headwater.stream.native.AVAILABLE`).
- `headwater.tasks._front` (headwater/tasks/_front.cc), the task connectors' gRPC front end,
  needs a C++ compiler and libgrpc++ found by pkg-config (Debian: `libgrpc++-dev pkg-config`);
  without it the service runs on grpc.aio (`headwater.tasks.front.AVAILABLE`).
"""

import shlex
import subprocess

from setuptools import Extension, setup


def pkg_config(*args: str) -> list[str]:
    done = subprocess.run(["pkg-config", *args, "grpc++"], capture_output=True, text=True)
    if done.returncode != 0:
        raise LookupError((done.stderr.strip() or "pkg-config found no grpc++").splitlines()[0])
    return shlex.split(done.stdout)


def front() -> list[Extension]:
    """The gRPC front end, compiled and linked with pkg-config's flags for grpc++, if present."""
    try:
        cflags, libs = pkg_config("--cflags"), pkg_config("--libs")
    except (OSError, LookupError) as exc:  # OSError: no pkg-config
        print(f"headwater: not building headwater.tasks._front, needs libgrpc++-dev: {exc}")
        return []
    warnings = ["-Wall", "-Wextra"]
    return [
        Extension(
            "headwater.tasks._front",
            ["headwater/tasks/_front.cc"],
            language="c++",
            extra_compile_args=["-O2", "-std=c++17", "-fvisibility=hidden", *warnings, *cflags],
            extra_link_args=libs,  # as given: their order matters to the linker
            optional=True,
        )
    ]


setup(
    ext_modules=[
        Extension(
            "headwater.stream._native",
            ["headwater/stream/_native.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
            optional=True,
        ),
        *front(),
    ]
)
