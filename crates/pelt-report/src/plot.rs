//! Plots generated from the records, as papers print them: test score against data size per method,
//! and test score against the % of trainable parameters; each as SVG and PNG. Where the records kept
//! their dev curves, a third plot draws them: dev score against training step, per task and data size.
//!
//! Scores are averaged over the suite's tasks (each task's mean over seeds first), one panel per task
//! beside the average for the data-size plot, one panel per data size for the parameter plot.

use crate::table::{Cell, Table};
use anyhow::{anyhow, bail, Context, Result};
use pelt_records::{DataSize, Record, Status};
use plotters::{coord::Shift, prelude::*, style::FontStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Size of every chart in pixels.
const SIZE: (u32, u32) = (1400, 900);
const FONT: &str = "sans-serif";

/// Registers the font the charts' text is drawn with (once per process; ab_glyph needs it even for
/// SVG, to measure text).
fn register(font: &Path) -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let bytes = std::fs::read(font).map_err(|e| format!("{}: {e} (the set-up installs it)", font.display()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType font", font.display()))
    });
    done.clone().map_err(|e| anyhow!(e))
}

/// Mean over tasks of the cells of `row` at `size`, when every task has one, with the std over seeds
/// of that mean (tasks taken as independent: √Σσ²ₜ / T).
fn task_average(table: &Table, tasks: &[String], row: &str, size: &str) -> Option<(f64, f64)> {
    let cells: Vec<&Cell> =
        tasks.iter().filter_map(|t| table.cells.get(&(row.to_owned(), (t.clone(), size.to_owned())))).collect();
    (cells.len() == tasks.len() && !cells.is_empty()).then(|| {
        let t = cells.len() as f64;
        (cells.iter().map(|c| c.mean).sum::<f64>() / t, cells.iter().map(|c| c.std * c.std).sum::<f64>().sqrt() / t)
    })
}

/// The table's tasks and data sizes, in column order.
fn axes(table: &Table) -> (Vec<String>, Vec<String>) {
    let mut tasks: Vec<String> = Vec::new();
    let mut sizes: Vec<String> = Vec::new();
    for (t, z) in &table.columns {
        if !tasks.contains(t) {
            tasks.push(t.clone());
        }
        if !sizes.contains(z) {
            sizes.push(z.clone());
        }
    }
    sizes.sort_by_key(|z| DataSize::parse(z).map(DataSize::order).unwrap_or((9, 0)));
    (tasks, sizes)
}

fn color(i: usize) -> RGBColor {
    // Distinguishable colours for up to 20 methods, then the palette repeats with other markers.
    const P: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (57, 59, 121),
        (173, 73, 74),
        (99, 121, 57),
        (140, 109, 49),
        (123, 65, 115),
        (82, 84, 163),
        (231, 150, 156),
        (107, 110, 207),
        (181, 207, 107),
        (222, 158, 214),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

/// Shapes of method `i`'s marker: a filled circle for the first 20 methods, whose colours all differ;
/// past 20 the colours repeat, so the shape changes (triangle, then cross) to keep every method's line
/// and legend entry distinct.
#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Triangle,
    Cross,
}

fn shape(i: usize) -> Shape {
    match (i / 20) % 3 {
        0 => Shape::Circle,
        1 => Shape::Triangle,
        _ => Shape::Cross,
    }
}

/// Draws method `i`'s markers at `points` on a chart.
fn markers<DB: DrawingBackend, CT: CoordTranslate>(
    chart: &mut ChartContext<'_, DB, CT>,
    points: &[CT::From],
    i: usize,
    radius: i32,
) -> Result<()>
where
    CT::From: Clone + 'static,
{
    let c = color(i);
    let drawn = match shape(i) {
        Shape::Circle => chart.draw_series(points.iter().map(|p| Circle::new(p.clone(), radius, c.filled()))).map(drop),
        Shape::Triangle => {
            chart.draw_series(points.iter().map(|p| TriangleMarker::new(p.clone(), radius + 2, c.filled()))).map(drop)
        }
        Shape::Cross => {
            chart.draw_series(points.iter().map(|p| Cross::new(p.clone(), radius, c.stroke_width(2)))).map(drop)
        }
    };
    drawn.map_err(err)
}

type Draw<'a, DB> = &'a DrawingArea<DB, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e:?}")
}

/// The legend: one coloured line and name per method, down a side panel.
fn legend<DB: DrawingBackend>(area: Draw<DB>, rows: &[(String, i64, f64)]) -> Result<()> {
    let step = (area.dim_in_pixel().1 as i32 / (rows.len() as i32 + 1)).min(34);
    for (i, (m, _, pc)) in rows.iter().enumerate() {
        let y = 20 + i as i32 * step;
        let c = color(i);
        area.draw(&PathElement::new(vec![(8, y), (40, y)], c.stroke_width(3))).map_err(err)?;
        let drawn = match shape(i) {
            Shape::Circle => area.draw(&Circle::new((24, y), 5, c.filled())),
            Shape::Triangle => area.draw(&TriangleMarker::new((24, y), 7, c.filled())),
            Shape::Cross => area.draw(&Cross::new((24, y), 5, c.stroke_width(2))),
        };
        drawn.map_err(err)?;
        let label = format!("{m} ({pc:.3}%)");
        area.draw(&Text::new(label, (48, y - 9), (FONT, 17))).map_err(err)?;
    }
    Ok(())
}

/// Each method's family (label → family), which groups the score-vs-size chart into panels; the
/// family [`REFERENCE`] marks the baselines drawn in grey in every panel.
pub type Families = BTreeMap<String, String>;

/// The family of the baselines (full fine-tuning, the linear probe) that every panel shows in grey.
pub const REFERENCE: &str = "reference";

/// Colours within one panel: ten of [`color`]'s, the most distinct first and its grey (7) left out, so
/// that no method is mistaken for the grey references; few enough methods share a panel that each gets
/// its own.
fn panel_color(i: usize) -> RGBColor {
    const ORDER: [usize; 10] = [0, 3, 2, 4, 1, 9, 5, 6, 8, 10];
    color(ORDER[i % ORDER.len()])
}

/// A panel's line: its name, colour, marker and points (x = size index, mean, std).
#[derive(Clone)]
struct Line {
    name: String,
    color: RGBColor,
    shape: usize,
    reference: bool,
    points: Vec<(f64, f64, f64)>,
}

/// Draws marker `shape` (circle, triangle, square, diamond, cross, in turn) at `p`.
fn marker_at<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    p: (f64, f64),
    shape: usize,
    c: RGBColor,
) -> Result<()> {
    let drawn = match shape % 5 {
        0 => chart.draw_series(std::iter::once(Circle::new(p, 5, c.filled()))).map(drop),
        1 => chart.draw_series(std::iter::once(TriangleMarker::new(p, 7, c.filled()))).map(drop),
        2 => chart
            .draw_series(std::iter::once(EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], c.filled())))
            .map(drop),
        3 => chart
            .draw_series(std::iter::once(
                EmptyElement::at(p) + Polygon::new(vec![(0, -7), (6, 0), (0, 7), (-6, 0)], c.filled()),
            ))
            .map(drop),
        _ => chart.draw_series(std::iter::once(Cross::new(p, 5, c.stroke_width(2)))).map(drop),
    };
    drawn.map_err(err)
}

/// Spreads label heights (pixels, in line order) so that no two are closer than `gap`, moving each as
/// little as it can and keeping their order; returns the new heights.
fn spread(ys: &[i32], gap: i32) -> Vec<i32> {
    let mut order: Vec<usize> = (0..ys.len()).collect();
    order.sort_by_key(|&i| ys[i]);
    let mut out = ys.to_vec();
    // Push down any label that sits too close below the one above it, then centre each crowded run
    // on its labels' own mean height so the group moves as little as possible.
    for k in 1..order.len() {
        let (prev, cur) = (order[k - 1], order[k]);
        out[cur] = out[cur].max(out[prev] + gap);
    }
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && out[order[end]] == out[order[end - 1]] + gap {
            end += 1;
        }
        let run = &order[start..end];
        let shift = (run.iter().map(|&i| ys[i] - out[i]).sum::<i32>()) / run.len() as i32;
        let shift = shift.max(if start > 0 { out[order[start - 1]] + gap - out[run[0]] } else { i32::MIN });
        for &i in run {
            out[i] += shift;
        }
        start = end;
    }
    out
}

/// One panel of score against data size: the family's methods in colour, the references in grey, each
/// line with ± std bars over the seeds and its name at its end.
fn size_panel<DB: DrawingBackend>(area: Draw<DB>, title: &str, sizes: &[String], lines: &[Line]) -> Result<()> {
    let ys = lines.iter().flat_map(|l| l.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    let pad = ((hi - lo) * 0.08).max(1.0);
    let n = sizes.len().max(1);
    // Room right of the last size for the names at the lines' ends.
    let names_room = 0.55 * (n as f64 - 1.0).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.3f64..(n as f64 - 1.0 + names_room), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n + 2)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                sizes.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("training examples")
        .y_desc("test score")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    // References first, so the family's own lines are drawn over them.
    let mut ends = Vec::new();
    for line in lines.iter().filter(|l| l.reference).chain(lines.iter().filter(|l| !l.reference)) {
        let c = line.color;
        let style = if line.reference { c.stroke_width(2) } else { c.stroke_width(3) };
        let pts: Vec<(f64, f64)> = line.points.iter().map(|p| (p.0, p.1)).collect();
        chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(err)?;
        for &(x, y, sd) in &line.points {
            if sd > 0.0 {
                let bar = ErrorBar::new_vertical(x, y - sd, y, y + sd, c.stroke_width(1), 8);
                chart.draw_series(std::iter::once(bar)).map_err(err)?;
            }
            marker_at(&mut chart, (x, y), line.shape, c)?;
        }
        if let Some(&(x, y)) = pts.last() {
            ends.push((line, (x, y), chart.backend_coord(&(x, y))));
        }
    }
    // Names at the lines' ends, spread apart where lines end close together; each drawn at a pixel
    // offset from its line's last point, with a thin lead where it had to move.
    let heights = spread(&ends.iter().map(|(_, _, p)| p.1).collect::<Vec<_>>(), 17);
    let x_end = ends.iter().map(|(_, _, p)| p.0).max().unwrap_or(0);
    for ((line, at, (px, py)), label_y) in ends.iter().zip(heights) {
        let font = (FONT, 15).into_font().color(&line.color);
        let (dx, dy) = (x_end + 14 - px, label_y - py);
        let name = EmptyElement::at(*at) + Text::new(line.name.clone(), (dx, dy - 8), font);
        chart.draw_series(std::iter::once(name)).map_err(err)?;
        if dy.abs() > 3 || dx > 20 {
            let lead = EmptyElement::at(*at) + PathElement::new(vec![(6, 0), (dx - 2, dy)], line.color.mix(0.5));
            chart.draw_series(std::iter::once(lead)).map_err(err)?;
        }
    }
    Ok(())
}

/// Score against data size as small multiples: one panel per method family, each line the mean over
/// the suite's tasks (± the std over seeds of that mean, tasks taken as independent: √Σσ²ₜ / T), with
/// full fine-tuning and the linear probe in grey in every panel.
fn draw_sizes<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    table: &Table,
    families: &Families,
    suite: &str,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (tasks, sizes) = axes(table);
    let family = |m: &str| families.get(m).map_or("methods", String::as_str);
    let line_of = |m: &str, color: RGBColor, shape: usize, reference: bool| Line {
        name: m.to_owned(),
        color,
        shape,
        reference,
        points: sizes
            .iter()
            .enumerate()
            .filter_map(|(x, z)| task_average(table, &tasks, m, z).map(|(mean, sd)| (x as f64, mean, sd)))
            .collect(),
    };
    let references: Vec<Line> = table
        .rows
        .iter()
        .filter(|(m, ..)| family(m) == REFERENCE)
        .enumerate()
        .map(|(k, (m, ..))| {
            line_of(m, if k == 0 { RGBColor(90, 90, 90) } else { RGBColor(160, 160, 160) }, k + 2, true)
        })
        .collect();
    let mut panels: Vec<(&str, Vec<&str>)> = Vec::new();
    for (m, ..) in table.rows.iter().filter(|(m, ..)| family(m) != REFERENCE) {
        match panels.iter_mut().find(|(f, _)| *f == family(m)) {
            Some((_, members)) => members.push(m),
            None => panels.push((family(m), vec![m])),
        }
    }
    if panels.is_empty() {
        // Only references: one panel of them.
        panels.push((REFERENCE, Vec::new()));
    }
    let cols = match panels.len() {
        1 => 1,
        2..=4 => 2,
        _ => 3,
    };
    let over = if tasks.len() == 1 { tasks[0].clone() } else { format!("mean over {} tasks", tasks.len()) };
    let areas = root
        .titled(&format!("{suite}: test score ({over}) against training data, ± std over seeds"), (FONT, 24))
        .map_err(err)?;
    let areas = areas.split_evenly((panels.len().div_ceil(cols), cols));
    for ((name, members), area) in panels.iter().zip(&areas) {
        let mut lines: Vec<Line> = references.to_vec();
        lines.extend(members.iter().enumerate().map(|(k, m)| line_of(m, panel_color(k), k, false)));
        if lines.iter().any(|l| !l.points.is_empty()) {
            let lines: Vec<Line> = lines.into_iter().filter(|l| !l.points.is_empty()).collect();
            size_panel(area, name, &sizes, &lines)?;
        }
    }
    root.present().map_err(err)
}

/// Radius in pixels of the markers on the parameter plot.
const MARKER: i32 = 6;

/// A box in pixels: (left, top, right, bottom).
type Rect = (i32, i32, i32, i32);

/// Whether two boxes overlap; boxes touching at an edge do not.
fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// The box of a label of `size` (width, height) whose top-left corner sits at `offset` from `marker`.
fn label_box((x, y): (i32, i32), (w, h): (i32, i32), (dx, dy): (i32, i32)) -> Rect {
    (x + dx, y + dy, x + dx + w, y + dy + h)
}

/// Places one label per marker so that no label covers another label or any marker, and each stays
/// inside `bounds` (x and y pixel ranges) where it can; returns each label's top-left corner as an
/// offset from its marker.
///
/// `markers` are the markers' pixel centres, `sizes` the labels' widths and heights, `clear` the
/// distance a label keeps from its own marker. Each label takes the nearest free spot: to the right
/// of its marker on the marker's row, else to the left, else one row up or down on either side, and
/// so on outwards. Moving only downwards (what came before) pushed the names in a crowded panel
/// many rows away from their points, so that the reader could no longer tell which was which.
fn place_labels(
    markers: &[(i32, i32)],
    sizes: &[(i32, i32)],
    bounds: (std::ops::Range<i32>, std::ops::Range<i32>),
    clear: i32,
) -> Vec<(i32, i32)> {
    let dots: Vec<Rect> = markers.iter().map(|&(x, y)| (x - clear, y - clear, x + clear, y + clear)).collect();
    let inside = |b: Rect| b.0 >= bounds.0.start && b.2 <= bounds.0.end && b.1 >= bounds.1.start && b.3 <= bounds.1.end;
    const ROWS: i32 = 30;
    let mut placed: Vec<Rect> = Vec::new();
    let mut offsets = Vec::with_capacity(markers.len());
    for (&marker, &size) in markers.iter().zip(sizes) {
        let (w, h) = size;
        let at = |row: i32, right: bool| {
            let dx = if right { clear + 2 } else { -(clear + 2) - w };
            (dx, row * (h + 1) - h / 2)
        };
        let free = |offset| {
            let b = label_box(marker, size, offset);
            inside(b) && !placed.iter().chain(&dots).any(|&q| overlaps(b, q))
        };
        // Rows 0, -1, 1, -2, 2, ... (the first of the pair of zeros skipped).
        let rows = (0..=ROWS).flat_map(|r| [-r, r]).skip(1);
        let mut candidates = rows.flat_map(|row| [at(row, true), at(row, false)]);
        // Nowhere free (a panel far too crowded for its names): keep the label beside its marker.
        let offset = candidates.find(|&o| free(o)).unwrap_or_else(|| at(0, true));
        placed.push(label_box(marker, size, offset));
        offsets.push(offset);
    }
    offsets
}

/// Score against % trainable parameters (log scale), one panel per data size.
fn draw_params<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, table: &Table, suite: &str) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (tasks, sizes) = axes(table);
    let positive: Vec<f64> = table.rows.iter().map(|r| r.2).filter(|p| *p > 0.0).collect();
    let min_pct = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let min_pct = if min_pct.is_finite() { min_pct } else { 0.01 };
    // Methods with no trainable backbone parameters (head only) sit at the left edge, marked "0%".
    let floor = min_pct / 4.0;
    let areas = root
        .titled(&format!("{suite}: test score (task average) against trainable parameters"), (FONT, 26))
        .map_err(err)?;
    let cols = sizes.len().clamp(1, 3);
    let areas = areas.split_evenly((sizes.len().div_ceil(cols).max(1), cols));
    for (z, area) in sizes.iter().zip(&areas) {
        let with_sd: Vec<(usize, f64, f64, f64)> = table
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, (m, _, pc))| task_average(table, &tasks, m, z).map(|(y, sd)| (i, pc.max(floor), y, sd)))
            .collect();
        if with_sd.is_empty() {
            continue;
        }
        let points: Vec<(usize, f64, f64)> = with_sd.iter().map(|&(i, x, y, _)| (i, x, y)).collect();
        let (lo, hi) =
            with_sd.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.2 - p.3), b.max(p.2 + p.3)));
        let pad = ((hi - lo) * 0.1).max(1.0);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{z} training examples"), (FONT, 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((floor / 2.0..200.0).log_scale(), (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("% of backbone parameters trained (log scale; 0% at the left edge); bars ± std over seeds")
            .y_desc("test score, task average")
            .x_label_formatter(&|x| if *x < floor * 1.01 { "0".into() } else { format!("{x}") })
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        // Names sit beside their markers, moved to the nearest free spot where the panel is crowded
        // (see `place_labels`), with a thin line back to the marker when moved off its row.
        let font = (FONT, 15).into_font();
        let style: TextStyle = font.clone().into();
        let pixels: Vec<(i32, i32)> = points.iter().map(|(_, x, y)| chart.backend_coord(&(*x, *y))).collect();
        let sizes: Vec<(i32, i32)> = points
            .iter()
            .map(|(i, _, _)| {
                let (w, h) = area.estimate_text_size(&table.rows[*i].0, &style).unwrap_or((120, 16));
                (w as i32, h as i32)
            })
            .collect();
        for &(i, x, y, sd) in &with_sd {
            if sd > 0.0 {
                let bar = ErrorBar::new_vertical(x, y - sd, y, y + sd, color(i).mix(0.7).stroke_width(1), 8);
                chart.draw_series(std::iter::once(bar)).map_err(err)?;
            }
        }
        let bounds = chart.plotting_area().get_pixel_range();
        let offsets = place_labels(&pixels, &sizes, bounds, MARKER + 1);
        for (((i, x, y), (dx, dy)), (w, h)) in points.iter().zip(&offsets).zip(&sizes) {
            let c = color(*i);
            markers(&mut chart, &[(*x, *y)], *i, MARKER)?;
            if *dy != -(h / 2) {
                // The label left its marker's row (row 0 puts its top at -h/2): lead from the marker to
                // the label's near side.
                let end = if *dx > 0 { (*dx, dy + h / 2) } else { (dx + w, dy + h / 2) };
                let lead = EmptyElement::at((*x, *y)) + PathElement::new(vec![(0, 0), end], c.mix(0.6).stroke_width(1));
                chart.draw_series(std::iter::once(lead)).map_err(err)?;
            }
            let name = table.rows[*i].0.clone();
            let label = EmptyElement::at((*x, *y)) + Text::new(name, (*dx, *dy), font.clone().color(&c));
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// A table cell: (row, (task, size)), as [`Table::cells`] keys them.
type CellKey = (String, (String, String));

/// Mean dev curves by table cell: (step, mean dev score over the cell's seeds).
pub type Curves = BTreeMap<CellKey, Vec<(usize, f64)>>;

/// The dev curves of the runs that finished ok (the runs the table's cells average), each cell's seeds
/// averaged step by step. Runs of one cell share their evaluation schedule; a step enters the mean only
/// where every run of the cell that kept a curve evaluated it (to a finite score), so each point averages
/// the same seeds; a cell left with no point is left out. Records written before pelt kept curves add
/// nothing.
pub fn curves(records: &[Record]) -> Curves {
    // Per cell: the runs with a curve, and the dev scores at each step.
    let mut by_cell: BTreeMap<CellKey, (usize, BTreeMap<usize, Vec<f64>>)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok && !r.curve.is_empty()) {
        let (runs, steps) = by_cell.entry((r.method.clone(), (r.task.clone(), r.data_size.clone()))).or_default();
        *runs += 1;
        for p in r.curve.iter().filter(|p| p.dev.is_finite()) {
            steps.entry(p.step).or_default().push(p.dev);
        }
    }
    by_cell
        .into_iter()
        .map(|(cell, (runs, steps))| {
            let mean: Vec<(usize, f64)> = steps
                .into_iter()
                .filter(|(_, devs)| devs.len() == runs)
                .map(|(step, devs)| (step, devs.iter().sum::<f64>() / runs as f64))
                .collect();
            (cell, mean)
        })
        .filter(|(_, mean)| !mean.is_empty())
        .collect()
}

/// Mean dev score against the megabytes a federated run had communicated by each evaluated round (up
/// and down, `fed_mb_*` over `fed_rounds`), by table cell, seeds averaged round by round as in
/// [`curves`]; empty for a suite without federated runs.
pub fn communication_curves(records: &[Record]) -> BTreeMap<CellKey, Vec<(f64, f64)>> {
    let federated: Vec<Record> = records
        .iter()
        .filter(|r| {
            r.diagnostics.contains_key("fed_mb_up") && r.diagnostics.get("fed_rounds").is_some_and(|&n| n > 0.0)
        })
        .cloned()
        .collect();
    let per_round: BTreeMap<CellKey, f64> = federated
        .iter()
        .map(|r| {
            let d = &r.diagnostics;
            let mb = (d["fed_mb_up"] + d.get("fed_mb_down").copied().unwrap_or(0.0)) / d["fed_rounds"];
            ((r.method.clone(), (r.task.clone(), r.data_size.clone())), mb)
        })
        .collect();
    curves(&federated)
        .into_iter()
        .map(|(cell, pts)| {
            let mb = per_round.get(&cell).copied().unwrap_or(0.0);
            (cell, pts.into_iter().map(|(round, dev)| (round as f64 * mb, dev)).collect())
        })
        .collect()
}

/// Dev score against training step: one panel per column of the table that has curves, a line per
/// method in the legend's colours.
fn draw_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    table: &Table,
    curves: &Curves,
    suite: &str,
) -> Result<()> {
    let points: BTreeMap<CellKey, Vec<(f64, f64)>> =
        curves.iter().map(|(k, p)| (k.clone(), p.iter().map(|&(s, y)| (s as f64, y)).collect())).collect();
    let title = format!("{suite}: dev score during training (mean over seeds)");
    draw_panels(root, table, &points, &title, "step", false)
}

/// Dev score against cumulative communication, log scale: one panel per column with federated runs,
/// and under a partitions axis one per column and partition (see [`by_partition`]).
fn draw_communication<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    table: &Table,
    points: &BTreeMap<CellKey, Vec<(f64, f64)>>,
    suite: &str,
) -> Result<()> {
    let title = format!("{suite}: dev score against communication (mean over seeds)");
    let (mut table, points) = by_partition(table, points);
    // Centralised reference rows send nothing: they have no line here, so no place in the legend.
    table.rows.retain(|(m, _, _)| points.keys().any(|(label, _)| label == m));
    draw_panels(root, &table, &points, &title, "MB communicated (log scale)", true)
}

/// A partitions axis labels each federated row `<method>@<tag>` (`@iid`, `@a0.1`, `@q2`): the rows
/// become the methods and the columns (task and partition, size), so each panel compares the methods
/// under one partition; a table without such labels comes back as it is.
fn by_partition(
    table: &Table,
    points: &BTreeMap<CellKey, Vec<(f64, f64)>>,
) -> (Table, BTreeMap<CellKey, Vec<(f64, f64)>>) {
    if !table.rows.iter().any(|(m, _, _)| m.contains('@')) {
        return (table.clone(), points.clone());
    }
    let shown = |tag: &str| match (tag.strip_prefix('a'), tag.strip_prefix('q')) {
        _ if tag == "iid" => "IID".to_owned(),
        (Some(alpha), _) => format!("α={alpha}"),
        (_, Some(beta)) => format!("quantity β={beta}"),
        _ => tag.to_owned(),
    };
    let split = |label: &str| label.rsplit_once('@').map(|(m, t)| (m.to_owned(), shown(t)));
    let (mut rows, mut tags): (Vec<(String, i64, f64)>, Vec<String>) = (Vec::new(), Vec::new());
    for (label, params, share) in &table.rows {
        let (method, tag) = split(label).unwrap_or_else(|| (label.clone(), String::new()));
        if !rows.iter().any(|r| r.0 == method) {
            rows.push((method, *params, *share));
        }
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let columns = table
        .columns
        .iter()
        .flat_map(|(task, size)| tags.iter().map(move |tag| (format!("{task} {tag}"), size.clone())))
        .collect();
    let points = points
        .iter()
        .filter_map(|((label, (task, size)), p)| {
            split(label).map(|(method, tag)| ((method, (format!("{task} {tag}"), size.clone())), p.clone()))
        })
        .collect();
    (Table { rows, columns, cells: BTreeMap::new(), ..table.clone() }, points)
}

/// One panel per column of the table that has points, a line per method in the legend's colours; x on
/// a log scale when `log_x` (drawn as log10, labelled in the original unit).
fn draw_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    table: &Table,
    curves: &BTreeMap<CellKey, Vec<(f64, f64)>>,
    title: &str,
    x_desc: &str,
    log_x: bool,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (plots, side) = root.split_horizontally(SIZE.0 as i32 * 3 / 4);
    legend(&side.margin(40, 10, 10, 10), &table.rows)?;
    let columns: Vec<&(String, String)> = table
        .columns
        .iter()
        .filter(|c| table.rows.iter().any(|(m, _, _)| curves.contains_key(&(m.clone(), (*c).clone()))))
        .collect();
    let cols = match columns.len() {
        0..=4 => columns.len().clamp(1, 2),
        5..=9 => 3,
        _ => 4,
    };
    let areas = plots.titled(title, (FONT, 26)).map_err(err)?.split_evenly((columns.len().div_ceil(cols).max(1), cols));
    let x_of = |x: f64| if log_x { x.max(1e-12).log10() } else { x };
    for (column, area) in columns.iter().zip(&areas) {
        let series: Vec<(usize, Vec<(f64, f64)>)> = table
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, (m, _, _))| {
                curves.get(&(m.clone(), (*column).clone())).map(|p| (i, p.iter().map(|&(x, y)| (x_of(x), y)).collect()))
            })
            .collect();
        let points = series.iter().flat_map(|(_, p)| p.iter());
        let (x_lo, x_hi, lo, hi) = points
            .fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |(xa, xb, a, b), &(x, y)| {
                (xa.min(x), xb.max(x), a.min(y), b.max(y))
            });
        let (x_lo, x_hi) = if log_x { (x_lo - 0.2, x_hi + 0.2) } else { (0.0, x_hi.max(1.0) * 1.04) };
        let pad = ((hi - lo) * 0.08).max(1.0);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{} {}", column.0, column.1), (FONT, 20))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x_lo..x_hi, (lo - pad)..(hi + pad))
            .map_err(err)?;
        let label = |x: &f64| if log_x { compact(10f64.powf(*x)) } else { format!("{x:.0}") };
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&label)
            .x_desc(x_desc)
            .y_desc("dev score")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, pts) in series {
            chart.draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(2))).map_err(err)?;
            markers(&mut chart, &pts, i, 2)?;
        }
    }
    root.present().map_err(err)
}

/// A log axis's tick value in few characters: `0.25`, `40`, `1800`, `2.5e4`.
fn compact(v: f64) -> String {
    match v {
        v if v >= 1e4 => {
            let e = v.log10().floor();
            let m = v / 10f64.powf(e);
            if (m - m.round()).abs() < 0.05 {
                format!("{:.0}e{e:.0}", m.round())
            } else {
                format!("{m:.1}e{e:.0}")
            }
        }
        v if v >= 10.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

/// Draws the plot `name` on `root`.
fn draw<DB: DrawingBackend>(
    name: &str,
    root: DrawingArea<DB, Shift>,
    table: &Table,
    curves: &Curves,
    communication: &BTreeMap<CellKey, Vec<(f64, f64)>>,
    families: &Families,
    suite: &str,
) -> Result<()> {
    match name {
        "score_vs_size" => draw_sizes(root, table, families, suite),
        "score_vs_params" => draw_params(root, table, suite),
        "score_vs_communication" => draw_communication(root, table, communication, suite),
        _ => draw_curves(root, table, curves, suite),
    }
}

/// Writes `score_vs_size` and `score_vs_params`, `dev_curves` where `curves` has any and
/// `score_vs_communication` where `communication` (see [`communication_curves`]) has any, each as SVG
/// and PNG, into `out`; returns the files.
pub fn write(
    table: &Table,
    curves: &Curves,
    communication: &BTreeMap<CellKey, Vec<(f64, f64)>>,
    families: &Families,
    suite: &str,
    out: &Path,
    font: &Path,
) -> Result<Vec<PathBuf>> {
    if table.rows.is_empty() {
        bail!("no finished runs to plot");
    }
    register(font)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut names = vec!["score_vs_size", "score_vs_params"];
    if !curves.is_empty() {
        names.push("dev_curves");
    }
    if !communication.is_empty() {
        names.push("score_vs_communication");
    }
    let mut files = Vec::new();
    for name in names {
        for ext in ["svg", "png"] {
            let path = out.join(format!("{name}.{ext}"));
            // Drawn to a temporary name and renamed, so a plot on disk is always whole. The name is
            // this writer's own: shards of one suite finish side by side, and with a shared name one
            // renamed the other's half-drawn file away ("no plots: ... No such file"). The extension
            // stays last because the bitmap backend picks the image format from it.
            let tmp = pelt_records::temp_path(&path, ext);
            let result = match ext {
                "svg" => draw(
                    name,
                    SVGBackend::new(&tmp, SIZE).into_drawing_area(),
                    table,
                    curves,
                    communication,
                    families,
                    suite,
                ),
                _ => draw(
                    name,
                    BitMapBackend::new(&tmp, SIZE).into_drawing_area(),
                    table,
                    curves,
                    communication,
                    families,
                    suite,
                ),
            };
            result.with_context(|| format!("plotting {}", path.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn font() -> PathBuf {
        let assets = std::env::var_os("PELT_ASSETS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
        let f = assets.join("fonts/Roboto-Regular.ttf");
        assert!(f.is_file(), "{} is missing: run scripts/setup.sh", f.display());
        f
    }

    fn table() -> Table {
        let rows =
            vec![("lora".to_owned(), 100, 0.3), ("head_only".to_owned(), 0, 0.0), ("full".to_owned(), 1000, 100.0)];
        let mut cells = BTreeMap::new();
        let columns: Vec<(String, String)> = ["sst2", "rte"]
            .iter()
            .flat_map(|t| ["100", "1000"].iter().map(move |z| (t.to_string(), z.to_string())))
            .collect();
        for (i, (m, _, _)) in rows.iter().enumerate() {
            for (j, c) in columns.iter().enumerate() {
                cells.insert((m.clone(), c.clone()), Cell { mean: 50.0 + (i * 4 + j) as f64, std: 1.0, n: 3 });
            }
        }
        Table { caption: String::new(), rows, columns, cells, notes: Vec::new() }
    }

    #[test]
    fn task_average_needs_every_task() {
        let mut t = table();
        let tasks = vec!["sst2".to_owned(), "rte".to_owned()];
        // lora: sst2 100 → 50, rte 100 → 52.
        // The std of the mean of two tasks of std 1: √2 / 2.
        assert_eq!(task_average(&t, &tasks, "lora", "100"), Some((51.0, 2f64.sqrt() / 2.0)));
        t.cells.remove(&("lora".to_owned(), ("rte".to_owned(), "100".to_owned())));
        assert_eq!(task_average(&t, &tasks, "lora", "100"), None);
    }

    #[test]
    fn methods_past_the_palette_get_other_markers() {
        // 23 rows: the 21st to 23rd share colours with the 1st to 3rd and must differ in shape.
        let rows: Vec<(String, i64, f64)> = (0..23).map(|i| (format!("m{i}"), 10 * i, 0.1 * (i + 1) as f64)).collect();
        let mut cells = BTreeMap::new();
        let columns = vec![("sst2".to_owned(), "100".to_owned())];
        for (i, (m, _, _)) in rows.iter().enumerate() {
            cells.insert((m.clone(), columns[0].clone()), Cell { mean: 60.0 + i as f64, std: 0.0, n: 1 });
        }
        let t = Table { caption: String::new(), rows, columns, cells, notes: Vec::new() };
        let dir = tempfile::tempdir().unwrap();
        write(&t, &Curves::new(), &BTreeMap::new(), &Families::new(), "many", dir.path(), &font()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("score_vs_params.svg")).unwrap();
        // One marker per method: 20 circles, then 3 triangles in the palette's repeated colours.
        let (circles, triangles) = (svg.matches("<circle").count(), svg.matches("<polygon").count());
        assert_eq!((circles, triangles), (20, 3));
    }

    #[test]
    fn size_panels_are_method_families_with_the_references_in_each() {
        let mut t = table();
        t.rows.push(("houlsby".to_owned(), 500, 2.0));
        t.rows.push(("pfeiffer".to_owned(), 250, 1.0));
        for (m, base) in [("houlsby", 70.0), ("pfeiffer", 69.0)] {
            for c in t.columns.clone() {
                t.cells.insert((m.to_owned(), c), Cell { mean: base, std: 2.0, n: 3 });
            }
        }
        let families: Families = [
            ("full", REFERENCE),
            ("head_only", REFERENCE),
            ("lora", "low-rank"),
            ("houlsby", "adapters"),
            ("pfeiffer", "adapters"),
        ]
        .into_iter()
        .map(|(m, f)| (m.to_owned(), f.to_owned()))
        .collect();
        let dir = tempfile::tempdir().unwrap();
        write(&t, &Curves::new(), &BTreeMap::new(), &families, "fam", dir.path(), &font()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("score_vs_size.svg")).unwrap();
        let names = |m: &str| svg.lines().filter(|l| l.trim() == m).count();
        // Two panels (low-rank, adapters), each with both references; every other method once.
        assert_eq!((names("low-rank"), names("adapters")), (1, 1), "panel titles");
        assert_eq!((names("full"), names("head_only")), (2, 2), "references in every panel");
        assert_eq!((names("lora"), names("houlsby"), names("pfeiffer")), (1, 1, 1));
        // Error bars: std 2 over two tasks gives bars on every point of houlsby and pfeiffer.
        assert!(svg.matches("<polyline").count() + svg.matches("<line").count() > 10, "no error bars drawn");
    }

    #[test]
    fn end_labels_spread_apart_keeping_their_order() {
        assert_eq!(spread(&[100, 300], 17), vec![100, 300], "far apart: unmoved");
        let out = spread(&[100, 101, 102], 17);
        assert!(out[1] - out[0] >= 17 && out[2] - out[1] >= 17, "{out:?}");
        assert!((out[1] - 101).abs() <= 1, "the crowd is centred on its own heights: {out:?}");
        let out = spread(&[50, 10, 12], 17);
        assert!(out[2] - out[1] >= 17 && out[0] - out[2] >= 17 && out[0] == 50, "{out:?}");
    }

    #[test]
    fn a_lone_label_sits_right_of_its_marker_and_moves_left_at_the_edge() {
        let bounds = (0..400, 0..300);
        let off = place_labels(&[(100, 150)], &[(80, 16)], bounds.clone(), 7);
        assert_eq!(off, vec![(9, -8)]);
        // Too close to the right edge for the name: it goes to the left of the marker, same row.
        let off = place_labels(&[(350, 150)], &[(80, 16)], bounds, 7);
        assert_eq!(off, vec![(-89, -8)]);
    }

    #[test]
    fn crowded_labels_cover_no_label_or_marker_and_stay_near() {
        // 26 markers in a tight clump, as the 500 / 1000 panels of the low-resource sweep have.
        let markers: Vec<(i32, i32)> = (0..26).map(|i| (150 + (i * 37 % 60), 200 + (i * 53 % 90))).collect();
        let sizes: Vec<(i32, i32)> = (0..26).map(|i| (60 + (i * 17 % 90), 16)).collect();
        let (clear, bounds) = (7, (0..420, 0..700));
        let off = place_labels(&markers, &sizes, bounds.clone(), clear);
        let b: Vec<Rect> = markers.iter().zip(&sizes).zip(&off).map(|((&m, &z), &o)| label_box(m, z, o)).collect();
        for (i, bi) in b.iter().enumerate() {
            assert!(bounds.0.contains(&bi.0) && bi.2 <= bounds.0.end, "label {i} leaves the panel: {bi:?}");
            assert!(bounds.1.contains(&bi.1) && bi.3 <= bounds.1.end, "label {i} leaves the panel: {bi:?}");
            for (j, bj) in b.iter().enumerate().skip(i + 1) {
                assert!(!overlaps(*bi, *bj), "labels {i} and {j} overlap: {bi:?} {bj:?}");
            }
            for (j, &(x, y)) in markers.iter().enumerate() {
                assert!(!overlaps(*bi, (x - clear, y - clear, x + clear, y + clear)), "label {i} covers marker {j}");
            }
        }
        // Nearest spot first: with room above and below the clump, no name ends up further than the
        // clump is tall (90 px) from its marker.
        let worst = markers.iter().zip(&b).map(|(&(_, y), bi)| (bi.1 + 8 - y).abs()).max().unwrap();
        assert!(worst <= 120, "a label is {worst} px from its marker");
    }

    #[test]
    fn plots_are_written_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let files =
            write(&table(), &Curves::new(), &BTreeMap::new(), &Families::new(), "test-suite", dir.path(), &font())
                .unwrap();
        assert_eq!(files.len(), 4);
        let svg = std::fs::read_to_string(dir.path().join("score_vs_size.svg")).unwrap();
        for text in ["test-suite", "mean over 2 tasks", "± std over seeds", "1000"] {
            assert!(svg.contains(text), "`{text}` missing from the size plot");
        }
        for m in ["full", "lora", "head_only"] {
            assert!(svg.lines().any(|l| l.trim() == m), "size plot lacks the name of {m} at its line's end");
        }
        let svg = std::fs::read_to_string(dir.path().join("score_vs_params.svg")).unwrap();
        assert!(svg.contains("1000 training examples"), "params plot lacks its panel titles");
        for m in ["full", "lora", "head_only"] {
            assert!(svg.lines().any(|l| l.trim() == m), "params plot lacks the label of {m}");
        }
        for name in ["score_vs_size.png", "score_vs_params.png"] {
            let png = std::fs::read(dir.path().join(name)).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
            assert!(png.len() > 20_000, "{name} is suspiciously small ({} bytes)", png.len());
        }
        // Nothing half-written is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(left.len(), 4);
    }

    /// A finished run of `method` on SST-2 at 100 examples with the dev curve `curve`.
    fn run(method: &str, seed: u64, status: &str, curve: &[(usize, f64)]) -> Record {
        let mut r = pelt_records::test_record("sst2", method, seed);
        r.status = serde_json::from_value(serde_json::json!(status)).unwrap();
        r.curve = curve.iter().map(|&(step, dev)| pelt_records::CurvePoint { step, dev, train_loss: 0.5 }).collect();
        r
    }

    #[test]
    fn curves_average_the_seeds_that_kept_one_step_by_step() {
        let records = [
            run("lora", 1, "ok", &[(50, 60.0), (100, 70.0)]),
            // An extra evaluation the other seed lacks would average one seed: it is left out.
            run("lora", 2, "ok", &[(50, 64.0), (100, 74.0), (150, 80.0)]),
            // A record from before curves were kept, and a diverged run: neither enters the mean.
            run("lora", 3, "ok", &[]),
            run("lora", 4, "diverged", &[(50, 10.0)]),
            run("head_only", 1, "ok", &[(50, 55.0)]),
            // A cell whose only evaluation gave no finite score has no point to draw.
            run("bitfit", 1, "ok", &[(50, f64::NAN)]),
        ];
        let cell = |m: &str| (m.to_owned(), ("sst2".to_owned(), "100".to_owned()));
        let expected: Curves = [(cell("head_only"), vec![(50, 55.0)]), (cell("lora"), vec![(50, 62.0), (100, 72.0)])]
            .into_iter()
            .collect();
        assert_eq!(curves(&records), expected);
    }

    #[test]
    fn dev_curves_are_drawn_where_records_kept_them() {
        let dir = tempfile::tempdir().unwrap();
        let cell = |m: &str, t: &str| (m.to_owned(), (t.to_owned(), "1000".to_owned()));
        let curves: Curves = [
            (cell("lora", "sst2"), vec![(50, 70.0), (100, 75.5), (150, 77.0)]),
            (cell("full", "sst2"), vec![(50, 65.0), (100, 79.0), (150, 80.0)]),
            (cell("lora", "rte"), vec![(50, 51.0), (100, 53.0)]),
        ]
        .into_iter()
        .collect();
        let files =
            write(&table(), &curves, &BTreeMap::new(), &Families::new(), "test-suite", dir.path(), &font()).unwrap();
        assert_eq!(files.len(), 6, "{files:?}");
        let svg = std::fs::read_to_string(dir.path().join("dev_curves.svg")).unwrap();
        for text in ["test-suite: dev score during training", "sst2 1000", "rte 1000", "dev score", "step"] {
            assert!(svg.contains(text), "`{text}` missing from the curve plot");
        }
        // Panels only for the columns with curves.
        assert!(!svg.contains("sst2 100<") && !svg.contains("rte 100<"), "a panel without curves was drawn");
        // One line per curve in its method's colour, besides the method's legend line: lora (row 0) has
        // two curves, full (row 2) one, head_only (row 1) none.
        let lines = |i: usize| {
            let RGBColor(r, g, b) = color(i);
            svg.lines().filter(|l| l.contains("<polyline") && l.contains(&format!("#{r:02X}{g:02X}{b:02X}"))).count()
        };
        assert_eq!((lines(0), lines(1), lines(2)), (3, 1, 2), "one line per curve");
        let png = std::fs::read(dir.path().join("dev_curves.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "dev_curves.png is not a whole PNG");
    }

    #[test]
    fn writers_side_by_side_do_not_take_each_others_files() {
        // Two shards of one suite refresh its plots when each finishes a run; they must not draw into
        // or rename away each other's temporary files.
        let dir = tempfile::tempdir().unwrap();
        let (t, font) = (table(), font());
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        (0..3)
                            .map(|_| {
                                write(
                                    &t,
                                    &Curves::new(),
                                    &BTreeMap::new(),
                                    &Families::new(),
                                    "test-suite",
                                    dir.path(),
                                    &font,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for w in writers {
                for result in w.join().unwrap() {
                    result.unwrap();
                }
            }
        });
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(left.len(), 4, "temporary files left behind");
    }

    #[test]
    fn log_ticks_read_short() {
        let shown: Vec<String> = [0.25, 2.0, 40.0, 1800.0, 10000.0, 25000.0].into_iter().map(compact).collect();
        assert_eq!(shown, ["0.25", "2.0", "40", "1800", "1e4", "2.5e4"]);
    }

    #[test]
    fn federated_runs_plot_dev_score_against_cumulative_communication() {
        let run = |method: &str, seed: u64, mb: f64| {
            let mut r = pelt_records::test_record("sst2", method, seed);
            r.data_size = "1000".into();
            r.curve = (1..=4)
                .map(|k| pelt_records::CurvePoint { step: k, dev: 50.0 + k as f64 + seed as f64, train_loss: 1.0 })
                .collect();
            r.diagnostics = [
                ("fed_mb_up".to_owned(), 2.0 * mb),
                ("fed_mb_down".to_owned(), 2.0 * mb),
                ("fed_rounds".to_owned(), 4.0),
            ]
            .into();
            r
        };
        let records = vec![run("lora", 1, 0.5), run("lora", 2, 0.5), run("full", 1, 100.0)];
        let comm = communication_curves(&records);
        // Up and down together 4·mb over 4 rounds: mb a round, so 2·mb by round 2; the seeds' dev
        // scores averaged round by round.
        assert_eq!(comm[&("lora".to_owned(), ("sst2".to_owned(), "1000".to_owned()))][1], (1.0, 53.5));
        assert_eq!(comm[&("full".to_owned(), ("sst2".to_owned(), "1000".to_owned()))][3], (400.0, 55.0));
        assert!(communication_curves(&[pelt_records::test_record("sst2", "lora", 1)]).is_empty());
        let mut cells = BTreeMap::new();
        for m in ["lora", "full"] {
            cells.insert((m.to_owned(), ("sst2".to_owned(), "1000".to_owned())), Cell { mean: 60.0, std: 1.0, n: 2 });
        }
        let t = Table {
            rows: vec![("lora".to_owned(), 10, 0.1), ("full".to_owned(), 1000, 100.0)],
            columns: vec![("sst2".to_owned(), "1000".to_owned())],
            cells,
            ..table()
        };
        let dir = tempfile::tempdir().unwrap();
        let files = write(&t, &Curves::new(), &comm, &Families::new(), "fed", dir.path(), &font()).unwrap();
        assert!(files.iter().any(|f| f.ends_with("score_vs_communication.png")), "{files:?}");
        // Under a partitions axis: a panel per (task, partition), a line per method.
        let tagged: BTreeMap<CellKey, Vec<(f64, f64)>> = ["lora@iid", "lora@a0.1", "full@a0.1"]
            .iter()
            .map(|m| ((m.to_string(), ("sst2".to_owned(), "1000".to_owned())), vec![(1.0, 50.0)]))
            .collect();
        let t = Table {
            rows: ["lora@iid", "lora@a0.1", "full@a0.1", "lora_centralised"]
                .iter()
                .map(|m| (m.to_string(), 1, 0.1))
                .collect(),
            ..t
        };
        let (panels, points) = by_partition(&t, &tagged);
        let rows: Vec<&str> = panels.rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(rows, ["lora", "full", "lora_centralised"]);
        let size = "1000".to_owned();
        assert_eq!(panels.columns, [("sst2 IID".to_owned(), size.clone()), ("sst2 α=0.1".to_owned(), size.clone())]);
        assert!(points.contains_key(&("full".to_owned(), ("sst2 α=0.1".to_owned(), size.clone()))));
        assert_eq!(points.len(), 3);
    }
}
