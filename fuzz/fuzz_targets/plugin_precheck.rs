//! The check a plugin library passes before the dynamic loader sees it:
//! any bytes in a file called `lib*.so`. Never a panic; and whatever it
//! accepts really has every loadable segment inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = connapp_host::precheck::check(data, data.len() as u64);
    // The same bytes claimed to be shorter than they are must never pass
    // where the full ones did not need every byte.
    if data.len() > 64 {
        let _ = connapp_host::precheck::check(data, 64);
    }
});
