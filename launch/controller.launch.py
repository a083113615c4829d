"""Dream-MPC controller alone, for a real robot: the robot's drivers publish
the observation and consume the action (e.g. a ros2_control
forward_command_controller on `action`).

    ros2 launch dream-mpc controller.launch.py
    ros2 launch dream-mpc controller.launch.py namespace:=robot1 \
        config:=/path/to/my_robot.yaml \
        observation_topic:=/robot1/joint_states \
        action_topic:=/robot1/forward_command_controller/commands

Needs the package built and sourced (`colcon build`, `source
install/setup.bash`; README "ROS 2 workspace"). Without installing, run the
node directly: `dream-mpc --ros-args --params-file config/controller.yaml`.

Launch arguments: `config` (parameter file; default the package's
config/controller.yaml, whose relative `bundle:` path is found in the
package's share folder), `namespace` (the node's namespace: its relative
topics `observation` and `action` live there), `observation_topic` and
`action_topic` (remapping targets; relative names resolve in the namespace).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arg = LaunchConfiguration
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution(
                    [FindPackageShare("dream-mpc"), "config", "controller.yaml"]
                ),
                description="ROS 2 parameter file for the controller node",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="node namespace, e.g. robot1"
            ),
            DeclareLaunchArgument("observation_topic", default_value="observation"),
            DeclareLaunchArgument("action_topic", default_value="action"),
            Node(
                package="dream-mpc",
                executable="dream-mpc",
                name="dream_mpc",
                namespace=arg("namespace"),
                parameters=[arg("config")],
                remappings=[
                    ("observation", arg("observation_topic")),
                    ("action", arg("action_topic")),
                ],
                output="screen",
                sigterm_timeout="2",
            ),
        ]
    )
