"""Print the command lines ROS 2's launch would run for a launch file.

    python3 launch_cmds.py FILE.launch.py [name:=value ...]

ROS 2's `launch` and `launch_ros` cannot be installed on these machines, so
this imports the launch file under small stand-in modules with the same
names and classes it uses (LaunchDescription, DeclareLaunchArgument,
LaunchConfiguration, PathJoinSubstitution, Node, FindPackageShare, the
shutdown event handler), calls its generate_launch_description(), and
expands each Node the way launch_ros does (Humble and later):

    <prefix>/lib/<package>/<executable> [arguments...] --ros-args
        -r __node:=<name> -r __ns:=</namespace> --params-file <file> ...
        -r <from>:=<to> ...

(a relative or empty namespace gets a leading '/'). FindPackageShare and
the executable's folder are looked up with the real ament_index_python, so
the package must be installed and AMENT_PREFIX_PATH set (`source
install/setup.sh`). Prints one JSON object: {"nodes": [{"package", "name",
"cmd": [...]}, ...]}.

What this does not verify: the real launch_ros's own argument handling
(versions differ in details such as parameter dicts, which these launch
files do not use), event handling, or process management.
"""

import importlib.util
import json
import os
import sys
import types

from ament_index_python.packages import get_package_prefix, get_package_share_directory

ARGS = {}


def evaluate(x):
    if isinstance(x, (list, tuple)):
        return "".join(evaluate(p) for p in x)
    if hasattr(x, "perform"):
        return x.perform()
    return str(x)


class LaunchConfiguration:
    def __init__(self, name, default=None):
        self.name, self.default = name, default

    def perform(self):
        if self.name in ARGS:
            return ARGS[self.name]
        if self.default is not None:
            return evaluate(self.default)
        raise KeyError(f"launch argument '{self.name}' has no value")


class PathJoinSubstitution:
    def __init__(self, parts):
        self.parts = parts

    def perform(self):
        return os.path.join(*[evaluate(p) for p in self.parts])


class FindPackageShare:
    def __init__(self, package):
        self.package = package

    def perform(self):
        return get_package_share_directory(evaluate(self.package))


class DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description="", **_):
        self.name, self.default_value = name, default_value


class Node:
    def __init__(self, package, executable, name=None, namespace=None, parameters=None,
                 remappings=None, arguments=None, ros_arguments=None, **_):
        self.package, self.executable, self.name = package, executable, name
        self.namespace, self.parameters = namespace, parameters
        self.remappings, self.arguments = remappings, arguments
        self.ros_arguments = ros_arguments

    def cmd(self):
        pkg = evaluate(self.package)
        exe = os.path.join(get_package_prefix(pkg), "lib", pkg, evaluate(self.executable))
        cmd = [exe] + [evaluate(a) for a in (self.arguments or [])]
        ros = list(evaluate(a) for a in (self.ros_arguments or []))
        if self.name is not None:
            ros += ["-r", "__node:=" + evaluate(self.name)]
        if self.namespace is not None:
            ns = evaluate(self.namespace)
            if not ns.startswith("/"):
                ns = "/" + ns
            ros += ["-r", "__ns:=" + ns]
        for p in self.parameters or []:
            if isinstance(p, dict):
                raise SystemExit("parameter dicts are not expanded by this harness")
            ros += ["--params-file", evaluate(p)]
        for src, dst in self.remappings or []:
            ros += ["-r", evaluate(src) + ":=" + evaluate(dst)]
        return cmd + (["--ros-args"] + ros if ros else [])


class LaunchDescription:
    def __init__(self, entities):
        self.entities = entities


class _Inert:
    def __init__(self, *a, **k):
        pass


def install_stand_ins():
    mods = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {
            "DeclareLaunchArgument": DeclareLaunchArgument,
            "EmitEvent": _Inert,
            "RegisterEventHandler": _Inert,
            "ExecuteProcess": _Inert,
        },
        "launch.event_handlers": {"OnProcessExit": _Inert},
        "launch.events": {"Shutdown": _Inert},
        "launch.substitutions": {
            "LaunchConfiguration": LaunchConfiguration,
            "PathJoinSubstitution": PathJoinSubstitution,
        },
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
    }
    for name, attrs in mods.items():
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
    sys.modules["launch"].actions = sys.modules["launch.actions"]


def main():
    path, given = sys.argv[1], sys.argv[2:]
    install_stand_ins()
    spec = importlib.util.spec_from_file_location("launch_file", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    declared = {e.name: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    for kv in given:
        k, v = kv.split(":=", 1)
        if k not in declared:
            raise SystemExit(f"'{k}' is not a launch argument of {path}: {sorted(declared)}")
        ARGS[k] = v
    for k, d in declared.items():
        if k not in ARGS:
            if d.default_value is None:
                raise SystemExit(f"launch argument '{k}' needs a value")
            ARGS[k] = evaluate(d.default_value)
    nodes = [
        {"package": evaluate(n.package), "name": evaluate(n.name), "cmd": n.cmd()}
        for n in ld.entities
        if isinstance(n, Node)
    ]
    print(json.dumps({"nodes": nodes}))


if __name__ == "__main__":
    main()
