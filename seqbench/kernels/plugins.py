"""Users' kernels: modules and files (`--plugin`, `plugins = [...]`), installed packages (entry-point group
`seqbench.kernels`) and `[[kernel]]` tables in a TOML config (a factory named "pkg.module:callable").

Every plugin loaded is recorded with where it came from, its package version and its git commit, so a
results sidecar says how to reproduce a run and `seqbench run --resume` can load the same kernels.
Every failure is a PluginError: one line naming the plugin, exit code 2.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

from seqbench.errors import PluginError
from seqbench.kernels import registry

ENTRY_POINT_GROUP = "seqbench.kernels"
TABLE_FIELDS = ("name", "factory", "family", "flops", "description", "causal", "train", "quadratic", "baseline",
                "args", "kwargs", "decode_flops", "params", "output", "inplace_state", "prefill_output",
                "max_time_per_point", "max_seq_len")
SHAPE_NAMES = ("B", "T", "d", "h", "d_h", "causal")  # what args / kwargs of a [[kernel]] table may name


@dataclass
class PluginRecord:
    """Where a kernel came from: what the user gave, the module imported, its package and commit."""

    spec: str  # as given: module name, file path, entry point, or a table's factory
    origin: str  # flag | config | entry_point | kernel_table
    module: str = ""
    file: str | None = None
    distribution: str | None = None
    version: str | None = None
    git_commit: str | None = None
    kernels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


_LOADED: dict[str, PluginRecord] = {}  # by spec


@contextlib.contextmanager
def users_stdout_to_stderr():
    """Users' code (plugin imports, factories, forward calls) runs with stdout sent to stderr, at the
    Python level and the file-descriptor level: a plugin's print must not corrupt what seqbench was
    asked to print (`list --format json`, the output path under -q, compare's verdicts)."""
    import contextlib as _cl

    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptors 1/2 (an embedded interpreter): the Python level only
        saved = None
    try:
        with _cl.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def loaded_plugins() -> list[PluginRecord]:
    return list(_LOADED.values())


def _first_own_line(exc: BaseException, root: Path | None) -> str:
    """The plugin's own line of the traceback (innermost frame in its files), and the error itself."""
    if isinstance(exc, SyntaxError) and exc.filename:  # raised by the compiler: no frame of the plugin's own
        where = f"{exc.filename}, line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        return f"{where}: {type(exc).__name__}: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if root is not None and _inside(Path(f.filename), root)]
    if not own:
        own = [f for f in frames if "importlib" not in f.filename and "/seqbench/" not in f.filename
               and not f.filename.startswith("<frozen")]
    where = f"{own[-1].filename}, line {own[-1].lineno}: " if own else ""
    message = str(exc).strip().splitlines()
    return f"{where}{type(exc).__name__}: {message[0] if message else ''}"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


def _plugin_root(name: str) -> Path | None:
    """The folder of a module's top-level package (or of the module file), without importing it."""
    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin).resolve().parent


def _cwd_importable() -> None:
    # `python -m seqbench` can import modules from the current folder, the `seqbench` script cannot;
    # a plugin beside the user's config should load either way (after installed packages).
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def import_module(name: str, what: str) -> ModuleType:
    """Import a plugin module, turning every failure into one line."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise PluginError(f"{what} {name!r} is not a module name (dotted identifiers, e.g. mylab.bench_kernels) "
                          "or a .py file")
    _cwd_importable()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise PluginError(f"{what} {name!r} not found: no module named {exc.name!r} is installed or in the "
                              "current folder") from None
        raise PluginError(f"{what} {name!r} failed to import: {_first_own_line(exc, _plugin_root(name))}") from None
    except PluginError as exc:  # e.g. it registers a duplicate name
        raise PluginError(f"{what} {name!r}: {exc}") from None
    except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - the plugin's own bug, shown as one line
        raise PluginError(f"{what} {name!r} failed to import: {_first_own_line(exc, _plugin_root(name))}") from None


def _import_file(path: Path, what: str) -> ModuleType:
    if not path.is_file():
        raise PluginError(f"{what} file {str(path)!r} not found")
    name = f"seqbench_plugin_{path.stem}" if path.stem.isidentifier() else "seqbench_plugin"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # as when the file runs as a script: its neighbours import
    try:
        spec.loader.exec_module(module)
    except PluginError as exc:
        sys.modules.pop(name, None)
        raise PluginError(f"{what} {str(path)!r}: {exc}") from None
    except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001
        sys.modules.pop(name, None)
        raise PluginError(f"{what} {str(path)!r} failed to import: {_first_own_line(exc, path.resolve().parent)}") from None
    return module


def _distribution(module: ModuleType) -> tuple[str | None, str | None]:
    """(distribution, version) of the installed package that holds the module, else (None, __version__).

    The distribution named as the package is asked first (a quarter of a millisecond); only a module
    installed under another name (PIL from pillow) in a folder of installed packages needs packages_distributions(),
    which reads every installed package's file list (0.2-0.6 s of each run with torch installed). A
    module imported from a checkout (a plugin beside the config, an `ab` side) is in no distribution.
    """
    top = module.__name__.split(".")[0]
    try:
        dist = importlib.metadata.distribution(top)
        return dist.metadata["Name"], dist.version
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    dists = []
    if _in_installed_folder(getattr(module, "__file__", None)):
        try:
            dists = importlib.metadata.packages_distributions().get(top, [])
        except Exception:  # noqa: BLE001 - broken metadata of some other package
            dists = []
    for dist in dists:
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    version = getattr(sys.modules.get(top), "__version__", None)
    return None, str(version) if version is not None else None


def _in_installed_folder(file: str | None) -> bool:
    """Whether the module's file lies in an import folder that holds installed distributions (a
    site-packages, a `pip install --target` folder): a checkout on the path holds no *.dist-info."""
    if not file:
        return False
    path = Path(file).resolve()
    for entry in sys.path:
        try:
            root = Path(entry or ".").resolve()
            if path.is_relative_to(root) and (next(root.glob("*.dist-info"), None) or next(root.glob("*.egg-info"), None)):
                return True
        except OSError:
            continue
    return False


def _record(spec: str, origin: str, module: ModuleType | None, before: set[str]) -> PluginRecord:
    from seqbench.measure.env import git_commit

    rec = PluginRecord(spec=spec, origin=origin)
    if module is not None:
        rec.module = module.__name__
        rec.file = getattr(module, "__file__", None)
        rec.distribution, rec.version = _distribution(module)
        rec.git_commit = git_commit(Path(rec.file).parent) if rec.file else None
    rec.kernels = [k for k in registry._REGISTRY if k not in before]
    return rec


def load_plugin(spec: str, origin: str = "flag") -> PluginRecord:
    """Import a plugin (a module name, or a path to a .py file) so its kernels register; idempotent."""
    spec = str(spec).strip()
    if is_file_spec(spec):
        spec = str(Path(spec).resolve())  # one file is one plugin, however its path was written
    if spec in _LOADED:
        return _LOADED[spec]
    before = set(registry._REGISTRY)
    with users_stdout_to_stderr():
        if is_file_spec(spec):
            module = _import_file(Path(spec), "plugin")
        else:
            module = import_module(spec, "plugin")
    rec = _record(spec, origin, module, before)
    _LOADED[spec] = rec
    return rec


def load_plugins(specs, origin: str = "flag") -> list[PluginRecord]:
    return [load_plugin(s, origin) for s in specs or ()]


def is_file_spec(spec: str) -> bool:
    return str(spec).endswith(".py") or os.sep in str(spec)


def make_importable(records: list[dict]) -> list[str]:
    """Before a resumed run loads its recorded plugins: put the folder each plugin module was imported
    from on sys.path (after installed packages), so the run continues from any directory. Returns
    notes on plugins whose code changed since (another git commit or version)."""
    notes = []
    for rec in records or []:
        module, file = rec.get("module"), rec.get("file")
        if not module or not file or rec.get("origin") == "entry_point":
            continue
        top = module.split(".")[0]
        if not module.startswith("seqbench_plugin") and _plugin_root(top) is None:
            root = Path(file).resolve().parent
            for _ in range(module.count(".") + (Path(file).name == "__init__.py")):
                root = root.parent
            if root.is_dir() and str(root) not in sys.path:
                sys.path.append(str(root))
        if rec.get("git_commit"):
            from seqbench.measure.env import git_commit

            now = git_commit(Path(file).parent) if Path(file).exists() else None
            if now and now != rec["git_commit"]:
                notes.append(f"plugin {rec.get('spec')}: its checkout is at {now}, the run began at {rec['git_commit']}")
    return notes


SKIP_ENTRY_POINTS = "SEQBENCH_SKIP_ENTRY_POINTS"


def load_entry_points() -> None:
    """Load every installed package's plugin (entry points in group seqbench.kernels).

    An entry point names a module (imported, so its kernels register) or a callable (called with no
    arguments, to register them). SEQBENCH_SKIP_ENTRY_POINTS (names, comma-separated, or *) leaves
    some out: a broken package need not stop runs and reports that do not use its kernels."""
    import os

    skip = {s.strip() for s in os.environ.get(SKIP_ENTRY_POINTS, "").split(",") if s.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name} = {ep.value}"
        if key in _LOADED or "*" in skip or ep.name in skip:
            continue
        before = set(registry._REGISTRY)
        dist = ep.dist.name if ep.dist else None
        what = f"plugin {ep.name!r} (entry point {key!r} of {dist or 'an installed package'})"
        without = (f"; to run without it: {SKIP_ENTRY_POINTS}={ep.name} seqbench ...; or fix"
                   f"{f' or uninstall {dist}' if dist else ' it'}")
        try:
            with users_stdout_to_stderr():
                obj = ep.load()
                if callable(obj) and not isinstance(obj, ModuleType):
                    obj()
        except PluginError as exc:
            raise PluginError(f"{what}: {exc}{without}") from None
        except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001
            root = _plugin_root(ep.value.split(":")[0])
            raise PluginError(f"{what} failed to load: {_first_own_line(exc, root)}{without}") from None
        module = sys.modules.get(ep.value.split(":")[0].strip())
        rec = PluginRecord(spec=key, origin="entry_point")
        if module is not None:
            rec = _record(key, "entry_point", module, before)
        rec.kernels = [k for k in registry._REGISTRY if k not in before]
        _LOADED[key] = rec


def _is_module_class(obj) -> bool:
    """A subclass of torch.nn.Module (told by its MRO, so checking it imports no torch)."""
    return isinstance(obj, type) and any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
                                         for c in obj.__mro__)


def _plugin_owned(module_name: str) -> bool:
    """Is module_name a plugin the user loads (--plugin, `plugins`, an installed entry point), or inside
    such a plugin's top-level package?"""
    tops = {rec.module.split(".")[0] for rec in _LOADED.values() if rec.module and rec.origin != "kernel_table"}
    tops |= {rec.spec.partition("=")[2].strip().split(":")[0].split(".")[0]
             for rec in _LOADED.values() if rec.origin == "entry_point"}
    tops.discard("")
    return bool(module_name) and module_name.split(".")[0] in tops


def _resolve(target: str, where: str):
    """A [[kernel]] factory: an nn.Module class from any importable module, or a function of a module the
    user loads as a plugin. Nothing else: a config is data, and naming `builtins:eval`, `os:system` or
    `subprocess:call` with arguments must not run them (README: Trust)."""
    module_name, sep, attr = str(target).partition(":")
    if not sep or not attr:
        raise PluginError(f"{where}: factory {target!r} must look like 'package.module:callable'")
    module_name = module_name.strip()
    with users_stdout_to_stderr():
        obj = import_module(module_name, f"{where}: factory module")
    for part in attr.strip().split("."):
        if not part.isidentifier() or part.startswith("__") or not hasattr(obj, part):
            raise PluginError(f"{where}: factory {target!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if _is_module_class(obj):
        return obj
    owner = getattr(obj, "__module__", None) or ""
    if callable(obj) and _plugin_owned(module_name) and _plugin_owned(owner):
        return obj
    raise PluginError(
        f"{where}: factory {target!r} is not a torch.nn.Module class, nor a function of a module loaded as a plugin; "
        "a config may name only those, so that it never runs code you did not choose (list the module under "
        "`plugins` or pass --plugin if you trust it)")


def _table_factory(target, args, kwargs):
    """Call target(shape), or target(*args, **kwargs) with B/T/d/h/d_h/causal replaced by the shape's values."""

    def factory(shape):
        env = {"B": shape.batch_size, "T": shape.seq_len, "d": shape.hidden_size, "h": shape.num_heads,
               "d_h": shape.head_dim, "causal": shape.causal}

        def sub(v):
            return env[v] if isinstance(v, str) and v in env else v

        if not args and not kwargs:
            return target(shape)
        return target(*(sub(a) for a in args), **{k: sub(v) for k, v in kwargs.items()})

    return factory


def register_table(table: dict, where: str = "config") -> registry.KernelSpec:
    """Register the kernel of one `[[kernel]]` table (idempotent for the same table)."""
    if not isinstance(table, dict):
        raise PluginError(f"{where}: each [[kernel]] entry must be a table, got {table!r}")
    name = table.get("name")
    where = f"{where}: [[kernel]] {name!r}" if name else f"{where}: [[kernel]]"
    unknown = sorted(set(table) - set(TABLE_FIELDS))
    if unknown:
        raise PluginError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(TABLE_FIELDS)}")
    for req in ("name", "factory", "family", "flops"):
        if req not in table:
            raise PluginError(f"{where}: missing field {req!r} (a [[kernel]] needs name, factory, family and flops)")
    if not isinstance(table["flops"], str):
        raise PluginError(f"{where}: flops must be a formula string in B, T, d, h, d_h, e.g. '4*B*T*d^2'")
    for key, kind in (("train", bool), ("quadratic", bool), ("baseline", bool), ("description", str),
                      ("args", list), ("kwargs", dict), ("causal", str), ("decode_flops", str), ("params", dict),
                      ("output", (int, str)), ("inplace_state", bool), ("prefill_output", bool),
                      ("max_time_per_point", (int, float)), ("max_seq_len", int)):
        if key in table and not isinstance(table[key], kind):
            kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise PluginError(f"{where}: field {key!r} must be {kinds}, got {table[key]!r}")
    target = _resolve(table["factory"], where)
    source = f"[[kernel]] factory={table['factory']}"
    existing = registry._REGISTRY.get(name)
    try:
        spec = registry.register_kernel(
            name, family=table["family"], flops=table["flops"], description=table.get("description", ""),
            factory=_table_factory(target, table.get("args", []), table.get("kwargs", {})),
            train=table.get("train", True), causal=table.get("causal"), quadratic=table.get("quadratic"),
            baseline=table.get("baseline", False), source=source, decode_flops=table.get("decode_flops"),
            params=table.get("params"), output=table.get("output"), inplace_state=table.get("inplace_state", False),
            prefill_output=table.get("prefill_output", False), max_time_per_point=table.get("max_time_per_point"),
            max_seq_len=table.get("max_seq_len"),
            replace=existing is not None and existing.source == source,
        )
    except PluginError as exc:
        raise PluginError(f"{where}: {exc}") from None
    key = f"{source} ({name})"
    if key not in _LOADED:
        module = sys.modules.get(str(table["factory"]).partition(":")[0].strip())
        rec = _record(str(table["factory"]), "kernel_table", module, set(registry._REGISTRY) - {name})
        rec.kernels = [name]
        _LOADED[key] = rec
    return spec
