"""Hardware-in-the-loop: the Dream-MPC controller and the simulated robot
(`dream-mpc-sim serve`, package dream-mpc-sim) in one namespace, speaking
the same topics over DDS.

    ros2 launch dream-mpc hil.launch.py
    ros2 launch dream-mpc hil.launch.py namespace:=robot1 task:=cartpole-swingup \
        config:=$(ros2 pkg prefix dream-mpc)/share/dream-mpc/config/cartpole.yaml

Needs both packages built and sourced (`colcon build` of this repository
builds both). Without installing: `bash scripts/hil.sh` does the same from a
checkout. The launch ends when the robot has finished its episodes (the
controller then gets SIGINT and publishes its safe action before exiting).

Launch arguments: `config`, `namespace`, `task` (the robot's task; its model
must match the config's bundle), `episodes`, `seed`, `speed`, `obs_noise`,
`action_latency_steps`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    controller = Node(
        package="dream-mpc",
        executable="dream-mpc",
        name="dream_mpc",
        namespace=arg("namespace"),
        parameters=[arg("config")],
        output="screen",
        sigterm_timeout="2",
    )
    robot = Node(
        package="dream-mpc-sim",
        executable="dream-mpc-sim",
        name="robot",
        namespace=arg("namespace"),
        arguments=[
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
        output="screen",
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution(
                    [FindPackageShare("dream-mpc"), "config", "controller.yaml"]
                ),
            ),
            DeclareLaunchArgument("namespace", default_value=""),
            DeclareLaunchArgument("task", default_value="pendulum-swingup"),
            DeclareLaunchArgument("episodes", default_value="1"),
            DeclareLaunchArgument("seed", default_value="0"),
            DeclareLaunchArgument("speed", default_value="1.0"),
            DeclareLaunchArgument("obs_noise", default_value="0.0"),
            DeclareLaunchArgument("action_latency_steps", default_value="0"),
            controller,
            robot,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=robot,
                    on_exit=[EmitEvent(event=Shutdown(reason="episodes done"))],
                )
            ),
        ]
    )
