//! Learning curve PNG (plotters, no Python): training episode returns and
//! the evaluation returns of the policy mean and of the planner against
//! environment steps.

use crate::metrics::Metrics;
use plotters::prelude::*;
use std::path::Path;

/// Draw `metrics` into a PNG at `path`. Errors (e.g. no usable font) are
/// returned as text; training treats them as warnings.
pub fn learning_curve(path: &Path, task: &str, metrics: &[Metrics]) -> Result<(), String> {
    let train: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.episode_return.map(|r| (m.env_step as f64, r)))
        .collect();
    let eval: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.eval_return.map(|r| (m.env_step as f64, r)))
        .collect();
    let plan: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.eval_planner_return.map(|r| (m.env_step as f64, r)))
        .collect();
    let xmax = metrics.iter().map(|m| m.env_step).max().unwrap_or(1).max(1) as f64;
    let ymax = train
        .iter()
        .chain(&eval)
        .chain(&plan)
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.05;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{task}: episode return"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("environment steps")
        .y_desc("return")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(train, BLUE.mix(0.5)))
        .map_err(|e| e.to_string())?
        .label("train episodes")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    // The two evaluations: a line with a dot at each evaluation.
    for (points, color, label) in [
        (eval, RED, "eval (policy mean)"),
        (plan, GREEN, "eval (Dream-MPC planner, controller code)"),
    ] {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
