//! How cluster commands print: `-o table|wide|json|yaml`, aligned columns,
//! and colour only when stdout is a terminal and NO_COLOR is unset.

use crate::cluster::CliError;
use clap::Args;
use serde::Serialize;
use std::io::IsTerminal;

/// Output formats of the cluster commands, as in kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// More columns.
    Wide,
    /// JSON (a `kind: List` for lists).
    Json,
    /// YAML (a `kind: List` for lists).
    Yaml,
}

/// The `-o` flag.
#[derive(Debug, Clone, Copy, Args, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Format,
}

impl OutputArgs {
    /// Whether the output is for people (table or wide).
    pub fn human(&self) -> bool {
        matches!(self.output, Format::Table | Format::Wide)
    }

    /// Whether the wide table was asked for.
    pub fn wide(&self) -> bool {
        self.output == Format::Wide
    }
}

/// Prints one document as JSON or YAML (per `format`); tables are the caller's.
pub fn print_document<T: Serialize>(format: Format, value: &T) -> Result<(), CliError> {
    let text = match format {
        Format::Yaml => {
            serde_yaml::to_string(value).map_err(|e| CliError::Output(e.to_string()))?
        }
        _ => {
            let mut s =
                serde_json::to_string_pretty(value).map_err(|e| CliError::Output(e.to_string()))?;
            s.push('\n');
            s
        }
    };
    print!("{text}");
    Ok(())
}

/// Prints objects as a kubectl-style `List`.
pub fn print_list<T: Serialize>(format: Format, items: &[T]) -> Result<(), CliError> {
    print_document(
        format,
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
    )
}

/// Whether to colour stdout.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours a phase, outcome or condition status by what it means for the user.
pub fn paint(text: &str) -> String {
    let code = match text {
        "Active" | "Allow" | "True" | "Approved" | "healthy" => "32",
        "PendingApproval" | "NeedsApproval" | "Pending" | "Unknown" => "33",
        "Denied" | "Deny" | "Revoked" | "False" | "unhealthy" => "31",
        "Expired" => "2",
        _ => return text.to_string(),
    };
    if colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Aligned columns with upper-case headers, as kubectl prints them.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_uppercase()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print as empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table; cells are padded before colouring so columns stay aligned.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String], paint_cells: bool| {
            let last = widths.len().saturating_sub(1);
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let shown = if paint_cells {
                    paint(cell)
                } else {
                    cell.to_string()
                };
                out.push_str(&shown);
                if i < last {
                    let pad = w.saturating_sub(cell.chars().count()) + 3;
                    out.push_str(&" ".repeat(pad));
                }
            }
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
        };
        line(&self.headers, false);
        for row in &self.rows {
            line(row, true);
        }
        out
    }

    /// Prints the table, or `empty` when it has no rows.
    pub fn print_or(&self, empty: &str) {
        if self.is_empty() {
            println!("{empty}");
        } else {
            print!("{}", self.render());
        }
    }
}

/// Shortens text to `max` characters for a table cell.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

/// `label: value` lines with aligned values, for `show`/`explain` pages.
pub fn field(label: &str, value: impl std::fmt::Display) {
    println!("  {:<22}{}", format!("{label}:"), value);
}
