//! ROS 2 message layouts as serde structs, field order exactly as in the
//! `.msg` definitions (CDR serializes fields in declaration order), plus the
//! ROS 2 type names so a stock ROS 2 node (any RMW over DDS) matches them.
//!
//! Wire names follow `MessageTypeName::new(pkg, name)`, e.g.
//! `std_msgs::msg::dds_::Float64MultiArray_`.

use ros2_client::MessageTypeName;
use serde::{Deserialize, Serialize};

/// `builtin_interfaces/msg/Time`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// Wall-clock time now (ROS time without a `/clock` source).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            sec: d.as_secs() as i32,
            nanosec: d.subsec_nanos(),
        }
    }
}

/// `std_msgs/msg/Header`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `std_msgs/msg/MultiArrayDimension`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiArrayDimension {
    pub label: String,
    pub size: u32,
    pub stride: u32,
}

/// `std_msgs/msg/MultiArrayLayout`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiArrayLayout {
    pub dim: Vec<MultiArrayDimension>,
    pub data_offset: u32,
}

/// `std_msgs/msg/Float64MultiArray`: raw observation in, action out (the
/// ros2_control forward_command_controller convention).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Float64MultiArray {
    pub layout: MultiArrayLayout,
    pub data: Vec<f64>,
}

impl Float64MultiArray {
    /// A one-dimensional array labelled `label`.
    pub fn vector(label: &str, data: Vec<f64>) -> Self {
        let n = data.len() as u32;
        Float64MultiArray {
            layout: MultiArrayLayout {
                dim: vec![MultiArrayDimension {
                    label: label.to_string(),
                    size: n,
                    stride: n,
                }],
                data_offset: 0,
            },
            data,
        }
    }
}

/// `std_msgs/msg/Float64`: the simulated robot's episode return.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Float64 {
    pub data: f64,
}

/// `std_msgs/msg/Int64`: the simulated robot's episode index, published
/// before each episode's first observation (docs/BAGS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Int64 {
    pub data: i64,
}

/// `sensor_msgs/msg/JointState`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    pub header: Header,
    pub name: Vec<String>,
    pub position: Vec<f64>,
    pub velocity: Vec<f64>,
    pub effort: Vec<f64>,
}

/// `diagnostic_msgs/msg/KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `diagnostic_msgs/msg/DiagnosticStatus` (level is a `byte`: OK=0,
/// WARN=1, ERROR=2, STALE=3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticStatus {
    pub level: u8,
    pub name: String,
    pub message: String,
    pub hardware_id: String,
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    pub const OK: u8 = 0;
    pub const WARN: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const STALE: u8 = 3;
}

/// `diagnostic_msgs/msg/DiagnosticArray`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticArray {
    pub header: Header,
    pub status: Vec<DiagnosticStatus>,
}

/// ROS 2 type name of `std_msgs/msg/Float64MultiArray`.
pub fn float64_multi_array_type() -> MessageTypeName {
    MessageTypeName::new("std_msgs", "Float64MultiArray")
}

/// ROS 2 type name of `std_msgs/msg/Float64`.
pub fn float64_type() -> MessageTypeName {
    MessageTypeName::new("std_msgs", "Float64")
}

/// ROS 2 type name of `std_msgs/msg/Int64`.
pub fn int64_type() -> MessageTypeName {
    MessageTypeName::new("std_msgs", "Int64")
}

/// ROS 2 type name of `sensor_msgs/msg/JointState`.
pub fn joint_state_type() -> MessageTypeName {
    MessageTypeName::new("sensor_msgs", "JointState")
}

/// ROS 2 type name of `diagnostic_msgs/msg/DiagnosticArray`.
pub fn diagnostic_array_type() -> MessageTypeName {
    MessageTypeName::new("diagnostic_msgs", "DiagnosticArray")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_type_names_follow_ros2_convention() {
        assert_eq!(
            float64_multi_array_type().dds_msg_type(),
            "std_msgs::msg::dds_::Float64MultiArray_"
        );
        assert_eq!(
            joint_state_type().dds_msg_type(),
            "sensor_msgs::msg::dds_::JointState_"
        );
        assert_eq!(
            diagnostic_array_type().dds_msg_type(),
            "diagnostic_msgs::msg::dds_::DiagnosticArray_"
        );
    }
}
