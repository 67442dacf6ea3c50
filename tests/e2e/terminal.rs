//! connapp at a real (pseudo-)terminal, as a person meets it: colour only on
//! a terminal and never with `NO_COLOR` or through a pipe; passphrases asked
//! as ssh and gpg ask them.

use crate::support::{Sandbox, built};

const ESC: &str = "\u{1b}[";

#[test]
fn colour_on_a_terminal_only() {
    let mut s = Sandbox::new(&built().full);
    s.init();
    // Not logged in: status reports the app in colour on a terminal.
    let tty = s.on_terminal(&["status"], &[]);
    assert_eq!(tty.code, Some(5), "{}", tty.screen);
    assert!(tty.screen.contains(ESC), "no colour on a terminal:\n{}", tty.screen);
    assert!(
        tty.screen.contains("needs-login -> connapp login dex-zoom"),
        "{}",
        tty.screen
    );
    // Piped: plain, stable text.
    let piped = s.run(&["status"], None).fails_with(5).stdout();
    assert!(!piped.contains(ESC), "{piped}");
    // --color always colours a pipe too; --color never and NO_COLOR keep a terminal plain.
    let forced = s.run(&["--color", "always", "status"], None).fails_with(5).stdout();
    assert!(forced.contains(ESC), "{forced}");
    let never = s.on_terminal(&["--color", "never", "status"], &[]);
    assert!(!never.screen.contains(ESC), "{}", never.screen);
    s.set_env("NO_COLOR", "1");
    let plain = s.on_terminal(&["status"], &[]);
    assert!(!plain.screen.contains(ESC), "{}", plain.screen);
    assert_eq!(plain.code, Some(5));
}

#[test]
fn a_new_file_store_confirms_its_passphrase_and_an_existing_one_allows_three_tries() {
    let mut s = Sandbox::new(&built().full);
    s.init();
    s.unset_env("CONNAPP_FILE_PASSPHRASE");
    // The store first (it is new, and says so), then the value.
    let set = s.on_terminal(
        &["secrets", "set", "client-id"],
        &[
            ("Creating a new file store at", "tty-passphrase-1"),
            ("Repeat the passphrase", "tty-passphrase-1"),
            ("Client ID for dex-zoom (input hidden)", "sbxTypedAtTheTerminal01"),
        ],
    );
    assert_eq!(set.code, Some(0), "{}", set.screen);
    assert!(
        !set.screen.contains("tty-passphrase-1"),
        "the passphrase was echoed:\n{}",
        set.screen
    );
    // A typo, then the right passphrase.
    let list = s.on_terminal(
        &["secrets", "list"],
        &[
            ("Passphrase for the file store", "tty-passphrase-typo"),
            ("try again (2 of 3)", "tty-passphrase-1"),
        ],
    );
    assert_eq!(list.code, Some(0), "{}", list.screen);
    assert!(list.screen.contains("client-id"), "{}", list.screen);
}
