//! `airgap bundle inspect … | head`: the reader took what it wanted and closed the pipe. The
//! write that then fails is no failure of the command, so airgap ends quietly and successfully,
//! as a shell's other writers to `head` do.

use std::io::ErrorKind;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// Whether `e` is a write to a stdout whose reader has gone. A broken pipe elsewhere (a child's
/// stdin, a socket) stays an error: stdout itself is asked whether anyone still reads it.
pub fn reader_left(e: &anyhow::Error) -> bool {
    let broken_pipe =
        e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe));
    broken_pipe && stdout_has_no_reader()
}

/// A pipe whose read end is closed polls as an error for its writer.
fn stdout_has_no_reader() -> bool {
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}
