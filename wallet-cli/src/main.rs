//! `machi-wallet`: the signing client for residents, counter staff and the town (see the
//! library's documentation).

fn main() {
    std::process::exit(machi_wallet::main_with(std::env::args_os()));
}
