//! The context a store plugin is opened with, in its FFI form: built here,
//! so that no front end writes `extern "C"` glue. The owner gives the
//! settings, the data directory and, when a human can be asked, a prompt —
//! a plain Rust function.

use std::path::Path;
use std::sync::OnceLock;

use abi_stable::std_types::{RResult, RStr, RString, RVec, Tuple2};
use connapp_plugin_api::zeroize::Zeroizing;
use connapp_plugin_api::{ErrorCode, FfiError, FfiStoreContext};

/// Asks the human for a secret with no echo (`prompt` is the question);
/// `Err` says why it could not.
pub type Prompt = fn(&str) -> Result<Zeroizing<String>, String>;

/// The process's prompt: a context's C function cannot carry a closure, so
/// the first owner to give a prompt sets it for the process (a process has
/// one terminal).
static PROMPT: OnceLock<Prompt> = OnceLock::new();

fn refuse(message: &str) -> RResult<RVec<u8>, FfiError> {
    RResult::RErr(FfiError {
        code: ErrorCode::AUTH_FAILED,
        message: RString::from(message),
        retryable: false,
    })
}

extern "C" fn ask(question: RStr<'_>) -> RResult<RVec<u8>, FfiError> {
    let Some(prompt) = PROMPT.get() else {
        return refuse("a secret is needed but no one can be asked");
    };
    match prompt(question.as_str()) {
        Ok(answer) => RResult::ROk(RVec::from_slice(answer.as_bytes())),
        Err(why) => refuse(&why),
    }
}

extern "C" fn nobody(_question: RStr<'_>) -> RResult<RVec<u8>, FfiError> {
    refuse("a secret is needed but standard input is not a terminal")
}

/// A store's context: its settings, connapp's data directory, and `prompt`
/// when a human can be asked (the context says interactive then).
pub fn store_context(settings: &[(String, String)], data_dir: &Path, prompt: Option<Prompt>) -> FfiStoreContext {
    let interactive = match prompt {
        Some(p) => {
            let _ = PROMPT.set(p);
            true
        }
        None => false,
    };
    FfiStoreContext {
        settings: settings
            .iter()
            .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
            .collect(),
        data_dir: data_dir.display().to_string().into(),
        interactive,
        prompt_secret: if interactive { ask } else { nobody },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(q: &str) -> Result<Zeroizing<String>, String> {
        Ok(Zeroizing::new(format!("answer to {q}")))
    }

    #[test]
    fn a_context_asks_through_the_owners_prompt_only_when_interactive() {
        let dir = Path::new("/data");
        let settings = vec![("addr".to_string(), "http://x".to_string())];
        let quiet = store_context(&settings, dir, None);
        assert!(!quiet.interactive);
        assert!((quiet.prompt_secret)(RStr::from("pass?")).is_err());
        let asking = store_context(&settings, dir, Some(answer));
        assert!(asking.interactive);
        assert_eq!(asking.data_dir.as_str(), "/data");
        assert_eq!(asking.settings[0].0.as_str(), "addr");
        match (asking.prompt_secret)(RStr::from("pass?")) {
            RResult::ROk(v) => assert_eq!(v.as_slice(), b"answer to pass?"),
            RResult::RErr(e) => panic!("{}", e.message),
        }
        // A non-interactive context still refuses, whatever was set before.
        assert!((store_context(&settings, dir, None).prompt_secret)(RStr::from("pass?")).is_err());
    }
}
