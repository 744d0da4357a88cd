//! The dashboard in headless Chromium: tests/dashboard/browser.py (playwright from PyPI, in a
//! venv the test makes, driving Debian's `chromium`) against this stack with Plan 63 and the
//! scripted history. The script compares each page with what the API answers the same token and
//! with facts of the history, on both time axes and for every role; it saves a screenshot of each
//! page into target/dashboard-screenshots/ and prints the overview's first-render time.

use std::path::Path;

use chrono::SubsecRound;

use super::*;

/// Runs one phase of the browser script; fails the test with its output when a check fails.
async fn browser(stack: &Stack, before: DateTime<Utc>, phase: &str) {
    let python = test_support::python_venv("dashboard-venv", "tests/dashboard/requirements.txt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (deploy/test.sh does)"
    );
    let config = json!({
        "url": stack.url,
        "before": before,
        "tokens": {
            "office": office(), "finance": roles::finance_officer(), "staff": staff(LEAD),
            "auditor": token(Role::Auditor, None), "viewer": token(Role::Viewer, None),
        },
        "lead": LEAD,
        "other": HEALTH,
        "screenshots": root.join("target/dashboard-screenshots"),
        "phase": phase,
    });
    let output = tokio::process::Command::new(&python)
        .arg(root.join("tests/dashboard/browser.py"))
        .env("DASHBOARD_TEST", config.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("run the browser script");
    let report = String::from_utf8_lossy(&output.stdout);
    // Shown with --no-capture: the first-render time is reported, not asserted.
    println!("{report}");
    assert!(
        output.status.success(),
        "the dashboard failed in Chromium ({phase}):\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains(&format!("dashboard browser checks ({phase}): passed")),
        "{report}"
    );
}

#[tokio::test]
async fn the_dashboard_in_chromium_shows_what_the_api_answers() {
    let mut stack = Stack::start().await;
    // Plan 63 is loaded and nothing else yet: the recorded-axis instant the time control visits,
    // a whole second (the page's time fields have seconds) before the history is scripted.
    let loaded = Utc::now();
    let before = (loaded + chrono::Duration::seconds(1)).trunc_subsecs(0);
    let wait = (before - loaded).to_std().expect("a second ahead");
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    script(&stack, &Dates::now()).await;
    stack.settle().await;
    browser(&stack, before, "main").await;

    // The projector stops and the stream moves on: the page says the data is behind.
    stack.stop_projector().await;
    stack
        .command(
            "set-item-deadline",
            &office(),
            json!({ "item_id": "kh-63-2025-04", "due_on": "2026-06-30" }),
        )
        .await;
    browser(&stack, before, "behind").await;

    // NATS goes down: the dashboards still answer; the audit trail cannot record its reads.
    stack.nats.stop();
    browser(&stack, before, "down").await;
    stack.nats.restart();
    stack.stop().await;
}
