"""The kernel catalog: every kernel by name, built-ins and users' alike, all registered through
registry.register_kernel.

The built-in kernel modules (recurrent, attention, scan, linear_attention, calibration) import torch;
they, and the plugins of installed packages (entry-point group `seqbench.kernels`), are loaded the
first time the catalog is read, so `import seqbench` stays cheap.
"""

from __future__ import annotations

import importlib

from seqbench.errors import PluginError
from seqbench.kernels.registry import KernelSpec, Shape, register_kernel

__all__ = ["KernelSpec", "Shape", "get_kernel", "kernels", "load_plugins", "register_kernel", "register_tables"]
BUILTIN_MODULES = ("recurrent", "attention", "scan", "linear_attention", "calibration")
_STATE = {"loaded": False}


def ensure_loaded() -> None:
    """Import the built-in kernel modules, then installed packages' plugins, once."""
    if _STATE["loaded"]:
        return
    _STATE["loaded"] = True
    from seqbench.kernels.plugins import load_entry_points

    for mod in BUILTIN_MODULES:
        importlib.import_module(f"seqbench.kernels.{mod}")
    load_entry_points()


def kernels() -> dict[str, KernelSpec]:
    """Every registered kernel by name: built-ins first, then plugins in load order."""
    from seqbench.kernels.registry import _REGISTRY

    ensure_loaded()
    return dict(_REGISTRY)


def get_kernel(name: str) -> KernelSpec:
    from seqbench.kernels.registry import _REGISTRY

    ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PluginError(
            f"unknown kernel {name!r}; known kernels: {', '.join(_REGISTRY)} (a kernel of your own? load its module "
            "with --plugin MODULE, plugins = [...] in the config, or a [[kernel]] table)"
        ) from None


def load_plugins(specs, origin: str = "flag"):
    """Load plugins (module names or .py files) after the built-ins, so a clash names both sides."""
    from seqbench.kernels import plugins

    ensure_loaded()
    return plugins.load_plugins(specs, origin)


def register_tables(tables, where: str = "config"):
    """Register the kernels of `[[kernel]]` tables (see plugins.register_table)."""
    from seqbench.kernels import plugins

    ensure_loaded()
    return [plugins.register_table(t, where) for t in tables]


def __getattr__(name: str):
    if name == "KERNELS":  # the catalog as a dict, built-ins loaded
        return kernels()
    raise AttributeError(name)
