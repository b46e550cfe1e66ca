//! Linking at run time: calls cross components through forwarders, in any
//! direction, cycles included.

use weft_tests::{Weft, app_dir, each_mode, http_get};

#[test]
fn components_that_import_from_each_other_call_back_and_forth() {
    // Split, every hop crosses a process, and the call comes back into the
    // worker that is waiting on it.
    each_mode(|mode| {
        // Two instances of one component, each linked to the other: a cycle.
        let dir = app_dir(
            "[app]\nname = \"cycle\"\n\
         [components.ping]\nwasm = \"{wasm:fixture_ping}\"\n\
         [components.pong]\nwasm = \"{wasm:fixture_ping}\"\n\
         [links]\n\"ping/demo:fixtures/ping\" = \"pong\"\n\"pong/demo:fixtures/ping\" = \"ping\"\n\
         [listeners.web]\ncomponent = \"ping\"\naddress = \"127.0.0.1:0\"\n",
        );
        let app = Weft::start(mode, &[dir.path().to_str().unwrap()]);
        // 6 hops: ping -> pong -> ping -> pong -> ping -> pong -> ping.
        assert_eq!(http_get(&app.url("web", "/?n=6")), (200, "6".into()));
        assert_eq!(http_get(&app.url("web", "/?n=1")), (200, "1".into()));
    });
}
