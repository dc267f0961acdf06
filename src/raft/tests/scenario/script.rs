//! The script format, after etcd raft's `datadriven` test files (reference/style.md §A.2):
//!
//! ```text
//! # A comment: lines starting with `#` and blank lines between directives are kept as is.
//! command arg key=value
//! ----
//! expected output, one or more lines
//! ```
//!
//! A directive is one command line, a `----` line, and its expected output: every line up to the
//! next blank line or the end of the file. Output is never empty (a command that prints nothing
//! prints `ok`) and never holds a blank line, so the blank line always ends it.
//!
//! Rewrite mode replaces each expected output with the actual one and keeps everything else
//! byte for byte; otherwise a mismatch is reported as a line diff.

/// One command with its expected output.
pub struct Directive {
    /// 1-based line number of the command.
    pub line: usize,
    pub command: String,
    pub expected: Vec<String>,
}

enum Segment {
    /// A comment or blank line, kept verbatim.
    Raw(String),
    Directive(Directive),
}

pub struct Script {
    segments: Vec<Segment>,
}

impl Script {
    pub fn parse(text: &str) -> Result<Script, String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut segments = Vec::new();
        let mut at = 0;
        while at < lines.len() {
            let line = lines[at];
            if line.trim().is_empty() || line.starts_with('#') {
                segments.push(Segment::Raw(line.to_string()));
                at += 1;
                continue;
            }
            let command_line = at + 1;
            if lines.get(at + 1).map(|l| l.trim_end()) != Some("----") {
                return Err(format!("line {command_line}: expected `----` after the command `{line}`"));
            }
            at += 2;
            let mut expected = Vec::new();
            while at < lines.len() && !lines[at].trim().is_empty() {
                expected.push(lines[at].to_string());
                at += 1;
            }
            segments.push(Segment::Directive(Directive { line: command_line, command: line.to_string(), expected }));
        }
        Ok(Script { segments })
    }

    pub fn directives(&self) -> impl Iterator<Item = &Directive> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Directive(d) => Some(d),
            Segment::Raw(_) => None,
        })
    }

    /// The file with every directive's output replaced by `actual` (one entry per directive,
    /// in order; `None` keeps the expected output, for directives never run).
    pub fn rewritten(&self, actual: &[Option<Vec<String>>]) -> String {
        let mut out = String::new();
        let mut outputs = actual.iter();
        for segment in &self.segments {
            match segment {
                Segment::Raw(line) => {
                    out.push_str(line);
                    out.push('\n');
                }
                Segment::Directive(d) => {
                    let output = outputs.next().and_then(|o| o.as_ref()).unwrap_or(&d.expected);
                    out.push_str(&d.command);
                    out.push_str("\n----\n");
                    for line in output {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

/// A line diff (longest common subsequence): ` ` both, `-` expected only, `+` actual only.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: the LCS length of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push_str(&format!("   {}\n", expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!(" - {}\n", expected[i]));
            i += 1;
        } else {
            out.push_str(&format!(" + {}\n", actual[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rewrite_round_trip() {
        let text = "# comment\n\ncmd a=1\n----\nout 1\nout 2\n\n# tail\ncmd2\n----\nok\n";
        let script = Script::parse(text).expect("parses");
        let commands: Vec<&str> = script.directives().map(|d| d.command.as_str()).collect();
        assert_eq!(commands, ["cmd a=1", "cmd2"]);
        assert_eq!(script.rewritten(&[None, None]), text);
        let new = script.rewritten(&[Some(vec!["x".into()]), None]);
        assert_eq!(new, "# comment\n\ncmd a=1\n----\nx\n\n# tail\ncmd2\n----\nok\n");
    }

    #[test]
    fn diff_marks_changed_lines() {
        let a: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
        let b: Vec<String> = ["1", "x", "3"].map(String::from).to_vec();
        assert_eq!(diff(&a, &b), "   1\n - 2\n + x\n   3\n");
    }
}
