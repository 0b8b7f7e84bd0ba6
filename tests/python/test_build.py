"""How the extension module is linked. sageattn._C must use the process's shared libstdc++: a copy
of its own (-static-libstdc++) next to the one torch loads crashed in ostream code while formatting
an error message (python/CMakeLists.txt)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import sageattn._C as ext


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF check (Linux only)")
def test_module_uses_the_shared_libstdcxx():
    if shutil.which("readelf") is None or shutil.which("nm") is None:
        pytest.skip("readelf/nm (binutils) not installed")
    path = ext.__file__
    needed = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    assert "libstdc++.so" in needed, f"{path} does not need libstdc++.so:\n{needed}"
    exported = subprocess.run(["nm", "-D", "-C", "--defined-only", path], capture_output=True, text=True,
                              check=True).stdout
    own = [s for s in exported.splitlines() if "std::basic_ostream" in s or "std::locale" in s]
    assert not own, f"{path} defines libstdc++ code of its own:\n" + "\n".join(own[:10])
