"""Hardware-in-the-loop: the Dream-MPC controller plus the simulated robot
`dream-mpc-sim serve`, speaking the same topics over DDS.

    ros2 launch launch/hil.launch.py config:=config/plumbing.yaml \
        task:=plumbing/point-mass episodes:=1 seed:=0

`dream-mpc` and `dream-mpc-sim` must be on PATH or given with
`controller_exe:=...` / `sim_exe:=...`. The launch ends when the simulated
robot has finished its episodes (the controller then gets SIGINT and
publishes its safe action before exiting).
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    arg = LaunchConfiguration
    controller = ExecuteProcess(
        cmd=[arg("controller_exe"), "run", "--params-file", arg("config")],
        name="dream_mpc",
        output="screen",
        sigterm_timeout="2",
    )
    sim = ExecuteProcess(
        cmd=[
            arg("sim_exe"),
            "serve",
            "--task",
            arg("task"),
            "--episodes",
            arg("episodes"),
            "--seed",
            arg("seed"),
            "--speed",
            arg("speed"),
            "--obs-noise",
            arg("obs_noise"),
            "--action-latency-steps",
            arg("action_latency_steps"),
        ],
        name="dream_mpc_sim",
        output="screen",
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value="config/controller.yaml"),
            DeclareLaunchArgument("task", default_value="pendulum-swingup"),
            DeclareLaunchArgument("episodes", default_value="1"),
            DeclareLaunchArgument("seed", default_value="0"),
            DeclareLaunchArgument("speed", default_value="1.0"),
            DeclareLaunchArgument("obs_noise", default_value="0.0"),
            DeclareLaunchArgument("action_latency_steps", default_value="0"),
            DeclareLaunchArgument("controller_exe", default_value="dream-mpc"),
            DeclareLaunchArgument("sim_exe", default_value="dream-mpc-sim"),
            controller,
            sim,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=sim,
                    on_exit=[EmitEvent(event=Shutdown(reason="episodes done"))],
                )
            ),
        ]
    )
