//! Plain-text tables for the terminal: a header row, numeric columns right-aligned, text
//! columns left-aligned.

/// Renders `rows` under `headers`, columns separated by two spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|column| {
            rows.iter().all(|row| {
                row.get(column)
                    .is_some_and(|cell| cell == "-" || cell.parse::<f64>().is_ok())
            })
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(&numeric)
            .map(|((cell, &width), &numeric)| match numeric {
                true => format!("{cell:>width$}"),
                false => format!("{cell:<width$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["books".to_string(), "1000".to_string()],
            vec!["dvd".to_string(), "7".to_string()],
        ];
        assert_eq!(
            render(&["domain", "count"], &rows),
            "domain  count\nbooks    1000\ndvd         7\n"
        );
    }
}
