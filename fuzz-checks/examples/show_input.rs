//! Prints the operations a fuzz input stands for:
//! `cargo run -p p2p-fuzz-checks --example show_input -- <target> <file>`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, path] = &args[..] else {
        eprintln!("usage: show_input <node|file|swarm|manifest> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(path).expect("read input");
    match target.as_str() {
        "node" => {
            for op in p2p_fuzz_checks::NodeOp::decode_all(&data) {
                println!("{op:?}");
            }
        }
        "file" => {
            for op in p2p_fuzz_checks::FileOp::decode_all(&data) {
                println!("{op:?}");
            }
        }
        "swarm" => {
            for op in p2p_fuzz_checks::SwarmOp::decode_all(&data) {
                println!("{op:?}");
            }
        }
        "manifest" => {
            let input = p2p_fuzz_checks::ManifestInput::decode(&data);
            println!("{input:?}");
            println!("{:?}", String::from_utf8_lossy(&input.bytes()));
        }
        other => println!("{other}: the input is {data:?}"),
    }
}
