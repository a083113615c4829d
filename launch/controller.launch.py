"""Dream-MPC controller alone (hardware): the robot's drivers publish the
observation and consume the action (e.g. a ros2_control
forward_command_controller on /action).

    ros2 launch launch/controller.launch.py config:=config/controller.yaml

`dream-mpc` must be on PATH (cargo install --path controller) or given with
`exe:=/path/to/dream-mpc`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    config = LaunchConfiguration("config")
    exe = LaunchConfiguration("exe")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config",
                default_value="config/controller.yaml",
                description="ROS 2 parameter file with a dream_mpc section",
            ),
            DeclareLaunchArgument("exe", default_value="dream-mpc"),
            ExecuteProcess(
                cmd=[exe, "run", "--params-file", config],
                name="dream_mpc",
                output="screen",
                sigterm_timeout="2",
            ),
        ]
    )
