//! The README's settings table is checked against the command line: every
//! variable a command reads (its clap arguments' `env`, and the variables its
//! `--help` lists as read from the environment only) has a row, with the
//! argument's flag and default; and every variable the table names is read
//! by some command. The commands are asked through the built binary's
//! `--help`, so this sees exactly what an operator sees.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The commands whose settings the table covers.
const COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["runtime"],
    &["openclaw", "install"],
    &["admin", "migrate"],
    &["admin", "secrets", "rotate"],
    &["admin", "credits"],
];

/// The heading of the `--help` section of variables read from the
/// environment only (`crate::config::env_help`).
const ENV_ONLY_HEADING: &str = "Environment only";

/// One variable as a command's help describes it.
#[derive(Debug, Default, Clone)]
struct Setting {
    /// The flag that sets it too (`--listen`), if it is an argument.
    flag: Option<String>,
    /// Its default, if it has one that is not empty.
    default: Option<String>,
}

fn help(command: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_clawplane"))
        .args(command)
        .arg("--help")
        // The help shows the current value of each variable: none here.
        .env_clear()
        .env("COLUMNS", "1000")
        .output()
        .expect("the clawplane binary runs");
    assert!(
        output.status.success(),
        "clawplane {} --help failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the help is UTF-8")
}

fn is_variable(word: &str) -> bool {
    word.len() > 1
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The text of `entry` between `open` and the next `]`.
fn bracketed<'a>(entry: &'a str, open: &str) -> Option<&'a str> {
    let start = entry.find(open)? + open.len();
    let end = entry[start..].find(']')? + start;
    Some(&entry[start..end])
}

/// The variables one command's help names, with flag and default.
fn settings_of(help: &str) -> BTreeMap<String, Setting> {
    let mut out = BTreeMap::new();
    let (args, env_only) = match help.find(ENV_ONLY_HEADING) {
        Some(at) => help.split_at(at),
        None => (help, ""),
    };
    // An argument's entry starts at a line whose first text is a dash
    // (`  -h, --help`, `      --listen <LISTEN>`); its description may be
    // wrapped over the lines that follow.
    let mut entries: Vec<String> = Vec::new();
    for line in args.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if text.starts_with('-') && indent <= 6 {
            entries.push(text.to_owned());
        } else if let Some(entry) = entries.last_mut() {
            entry.push(' ');
            entry.push_str(text);
        }
    }
    for entry in entries {
        let Some(env) = bracketed(&entry, "[env: ") else {
            continue;
        };
        let name = env.split('=').next().unwrap_or_default().trim().to_owned();
        let flag = entry
            .split([' ', ','])
            .find(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap_or(w).to_owned());
        // An empty default reads `[default: ]` or `[default: ""]`.
        let default = bracketed(&entry, "[default: ")
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "\"\"")
            .map(str::to_owned);
        out.insert(name, Setting { flag, default });
    }
    for line in env_only.lines().skip(1) {
        if let Some(rest) = line.strip_prefix("  ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if is_variable(name) {
                out.entry(name.to_owned()).or_default();
            }
        }
    }
    out
}

/// The README's settings table: each row's text, by every variable its
/// first column names.
fn readme_table() -> BTreeMap<String, String> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Configuration"))
        .expect("README.md has a Configuration section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                assert!(
                    is_variable(part),
                    "the settings table names `{part}`, which is not a whole variable name: {line}"
                );
                let previous = rows.insert(part.to_owned(), line.to_owned());
                assert!(
                    previous.is_none(),
                    "{part} has two rows in the settings table"
                );
            }
        }
    }
    rows
}

#[test]
fn every_setting_is_in_the_readme_table_and_every_row_is_read() {
    let table = readme_table();
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut problems: Vec<String> = Vec::new();
    for command in COMMANDS {
        let help = help(command);
        let settings = settings_of(&help);
        assert!(
            !settings.is_empty(),
            "no settings found in `clawplane {} --help`:\n{help}",
            command.join(" ")
        );
        for (name, setting) in settings {
            let at = format!("{name} (clawplane {})", command.join(" "));
            read.insert(name.clone());
            let Some(row) = table.get(&name) else {
                problems.push(format!("{at} is not in README.md's settings table"));
                continue;
            };
            if let Some(flag) = &setting.flag {
                if !row.contains(&format!("`{flag}`")) {
                    problems.push(format!("{at}: its row does not name the flag `{flag}`"));
                }
            }
            if let Some(default) = &setting.default {
                if !row.contains(&format!("`{default}`")) {
                    problems.push(format!(
                        "{at}: its row does not give the default `{default}`"
                    ));
                }
            }
        }
    }
    for name in table.keys() {
        if !read.contains(name) {
            problems.push(format!(
                "README.md's settings table names {name}, which no command reads"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_help_parser_finds_flags_defaults_and_environment_only_variables() {
    let help = "\
Options:
      --listen <LISTEN>
          Address to listen on

          [env: CLAWPLANE_LISTEN=]
          [default: 127.0.0.1:8080]

      --database-url <DATABASE_URL>
          Database URL: `postgres://...` for PostgreSQL; unset means the
          SQLite file [env: DATABASE_URL]

  -h, --help
          Print help

Environment only (keys and tokens never come from a flag, which `ps` would show):
  OA_CONTROL_KEY  the key of /control/openclaw/*
";
    let settings = settings_of(help);
    let listen = &settings["CLAWPLANE_LISTEN"];
    assert_eq!(listen.flag.as_deref(), Some("--listen"));
    assert_eq!(listen.default.as_deref(), Some("127.0.0.1:8080"));
    assert_eq!(
        settings["DATABASE_URL"].flag.as_deref(),
        Some("--database-url")
    );
    assert!(settings["OA_CONTROL_KEY"].flag.is_none());
    assert_eq!(settings.len(), 3, "{settings:?}");
}
