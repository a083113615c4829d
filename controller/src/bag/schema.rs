//! The ROS 2 message definitions our bags carry (MCAP schema encoding
//! `ros2msg`), written the way rosbag2 writes them: the type's `.msg` text,
//! then each dependency after a line of 80 `=` and `MSG: pkg/Type`.
//!
//! The field lines are those of the ROS 2 `std_msgs` interface definitions
//! (the layout [`crate::msgs`] serializes); the comments are ours.

/// The line rosbag2 puts between a type's text and each dependency.
pub const SEPARATOR: &str =
    "================================================================================";

/// `std_msgs/msg/Float64MultiArray`.
pub const FLOAT64_MULTI_ARRAY: &str = "std_msgs/msg/Float64MultiArray";
/// `std_msgs/msg/Float64`.
pub const FLOAT64: &str = "std_msgs/msg/Float64";
/// `std_msgs/msg/Int64`.
pub const INT64: &str = "std_msgs/msg/Int64";

const FLOAT64_MULTI_ARRAY_MSG: &str = "\
# A multi-dimensional array of float64; see MultiArrayLayout for the layout.

MultiArrayLayout  layout        # how data is laid out
float64[]         data          # the values
";

const MULTI_ARRAY_LAYOUT_MSG: &str = "\
# The layout of a multi-dimensional array in its flat data vector.

MultiArrayDimension[] dim # one entry per dimension, outermost first
uint32 data_offset        # elements to skip at the front of data
";

const MULTI_ARRAY_DIMENSION_MSG: &str = "\
string label   # name of the dimension
uint32 size    # number of elements along it
uint32 stride  # elements spanned by one step along the enclosing dimension
";

const FLOAT64_MSG: &str = "float64 data\n";
const INT64_MSG: &str = "int64 data\n";

/// The schema data (rosbag2 style, dependencies appended) of `type_name`
/// (`pkg/msg/Type`), or `None` for a type we do not write.
pub fn definition(type_name: &str) -> Option<String> {
    let (text, deps): (&str, &[(&str, &str)]) = match type_name {
        FLOAT64_MULTI_ARRAY => (
            FLOAT64_MULTI_ARRAY_MSG,
            &[
                ("std_msgs/MultiArrayLayout", MULTI_ARRAY_LAYOUT_MSG),
                ("std_msgs/MultiArrayDimension", MULTI_ARRAY_DIMENSION_MSG),
            ],
        ),
        FLOAT64 => (FLOAT64_MSG, &[]),
        INT64 => (INT64_MSG, &[]),
        _ => return None,
    };
    let mut out = String::from(text);
    for (name, dep) in deps {
        out.push_str(SEPARATOR);
        out.push_str("\nMSG: ");
        out.push_str(name);
        out.push('\n');
        out.push_str(dep);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_follow_the_main_text_in_rosbag2_form() {
        let d = definition(FLOAT64_MULTI_ARRAY).unwrap();
        let parts: Vec<&str> = d.split(&format!("{SEPARATOR}\n")).collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].contains("float64[]"));
        assert!(parts[1].starts_with("MSG: std_msgs/MultiArrayLayout\n"));
        assert!(parts[2].starts_with("MSG: std_msgs/MultiArrayDimension\n"));
        assert_eq!(definition(INT64).unwrap(), "int64 data\n");
        assert!(definition("std_msgs/msg/String").is_none());
    }
}
