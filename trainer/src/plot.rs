//! Learning curve PNGs (plotters, no Python): one run's training episode
//! returns and the evaluation returns of the policy mean and of the planner
//! against agent steps (online) or updates (offline); several seeds' evaluations
//! on one plot ([`seeds_curve`], `dream-mpc-train curves`); and the offline
//! run's model losses against updates.

use crate::metrics::Metrics;
use plotters::prelude::*;
use std::path::Path;

/// What the x axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Agent steps (TD-MPC2's unit): online training.
    AgentSteps,
    /// Gradient updates: offline training, where the data is fixed.
    Updates,
}

impl XAxis {
    fn of(self, m: &Metrics) -> f64 {
        match self {
            XAxis::AgentSteps => m.agent_step as f64,
            XAxis::Updates => m.updates as f64,
        }
    }

    fn label(self) -> &'static str {
        match self {
            XAxis::AgentSteps => "agent steps",
            XAxis::Updates => "updates",
        }
    }
}

/// Draw `metrics` into a PNG at `path`. Errors (e.g. no usable font) are
/// returned as text; training treats them as warnings.
pub fn learning_curve(
    path: &Path,
    task: &str,
    metrics: &[Metrics],
    x: XAxis,
) -> Result<(), String> {
    let series = |f: fn(&Metrics) -> Option<f64>| -> Vec<(f64, f64)> {
        metrics
            .iter()
            .filter_map(|m| f(m).map(|r| (x.of(m), r)))
            .collect()
    };
    let train = series(|m| m.episode_return);
    let eval = series(|m| m.eval_return);
    let plan = series(|m| m.eval_planner_return);
    let xmax = metrics.iter().map(|m| x.of(m)).fold(1.0, f64::max);
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
        .x_desc(x.label())
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
    legend_and_present(&mut chart, &root)
}

/// One run's evaluations for [`seeds_curve`]: its label and, per
/// evaluation, (agent step, policy-mean return, planner return).
pub struct RunCurve {
    pub label: String,
    pub evals: Vec<(f64, Option<f64>, Option<f64>)>,
}

impl RunCurve {
    /// The evaluation rows of a `metrics.csv` (columns found by name, so
    /// any version with `agent_step`, `eval_return` and
    /// `eval_planner_return` reads).
    pub fn from_csv(label: &str, text: &str) -> Result<RunCurve, String> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or("empty metrics.csv")?
            .split(',')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| format!("metrics.csv has no `{name}` column"))
        };
        let (x, e, p) = (
            col("agent_step")?,
            col("eval_return")?,
            col("eval_planner_return")?,
        );
        let num = |s: Option<&&str>| s.and_then(|s| s.parse::<f64>().ok());
        let mut evals = Vec::new();
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let step =
                num(f.get(x)).ok_or_else(|| format!("metrics.csv row {}: no agent_step", i + 2))?;
            let (ev, pl) = (num(f.get(e)), num(f.get(p)));
            if ev.is_some() || pl.is_some() {
                evals.push((step, ev, pl));
            }
        }
        Ok(RunCurve {
            label: label.to_string(),
            evals,
        })
    }
}

/// The evaluation returns of several runs of one task (seeds) against
/// agent steps on one plot: the planner's as solid lines with dots, the
/// policy mean's as thin lines of the same colour, and optional horizontal
/// reference lines (label, return), e.g. published results.
pub fn seeds_curve(
    path: &Path,
    title: &str,
    runs: &[RunCurve],
    references: &[(String, f64)],
) -> Result<(), String> {
    let all = runs.iter().flat_map(|r| &r.evals);
    let xmax = all.clone().map(|e| e.0).fold(1.0, f64::max);
    let ymax = all
        .flat_map(|e| [e.1, e.2])
        .flatten()
        .chain(references.iter().map(|r| r.1))
        .fold(1.0f64, f64::max)
        * 1.08;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("agent steps")
        .y_desc("evaluation return")
        .draw()
        .map_err(|e| e.to_string())?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, run) in runs.iter().enumerate() {
        let color = palette[i % palette.len()];
        let plan: Vec<(f64, f64)> = run
            .evals
            .iter()
            .filter_map(|e| e.2.map(|r| (e.0, r)))
            .collect();
        let policy: Vec<(f64, f64)> = run
            .evals
            .iter()
            .filter_map(|e| e.1.map(|r| (e.0, r)))
            .collect();
        chart
            .draw_series(LineSeries::new(plan.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("{} Dream-MPC", run.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(plan.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(policy, color.mix(0.45)))
            .map_err(|e| e.to_string())?
            .label(format!("{} policy mean", run.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.45)));
    }
    for (label, y) in references {
        let y = *y;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y), (xmax, y)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{label}: {y}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// The model losses of an offline run (rows with `episode` = 0 are the
/// per-chunk training rows) against updates, log scale, into a PNG.
pub fn loss_curve(path: &Path, task: &str, metrics: &[Metrics]) -> Result<(), String> {
    type Pick = fn(&Metrics) -> f64;
    let picks: [(&str, Pick, RGBColor); 4] = [
        ("consistency", |m| m.consistency_loss, BLUE),
        ("reward", |m| m.reward_loss, RED),
        ("value", |m| m.value_loss, GREEN),
        ("policy (|loss|)", |m| m.policy_loss.abs(), BLACK),
    ];
    let rows: Vec<&Metrics> = metrics.iter().filter(|m| m.eval_return.is_none()).collect();
    let xmax = rows.iter().map(|m| m.updates as f64).fold(1.0, f64::max);
    let vals = rows
        .iter()
        .flat_map(|m| picks.iter().map(move |p| (p.1)(m)))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return Err("no losses to draw".into());
    }
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{task}: offline training losses"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, (lo * 0.8..hi * 1.25).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("updates")
        .y_desc("loss (mean over the chunk)")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, pick, color) in picks {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|m| (m.updates as f64, pick(m)))
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    legend_and_present(&mut chart, &root)
}

/// Draw the series labels of `chart` and write `root`'s image.
fn legend_and_present<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
