//! `check --help`: what each part of the tool does and why.

pub(crate) const ABOUT: &str =
    "Model-check gsmo's multicast orders, Chandy-Lamport snapshots and replicated K/V store.";

pub(crate) const LONG_ABOUT: &str = "\
Model-check gsmo's multicast orders, Chandy-Lamport snapshots and replicated K/V
store with stateright. Every node is a thin adapter over the gsmo-spec transition
functions, and every property is a gsmo-spec predicate: the same code and the same
definition of \"correct\" the real cluster runs.

With no arguments, checks every model at its default, small configuration and
prints, per model: its properties, unique and total states, depth, seconds,
states/s, and PASS or FAIL with the counterexample, action by action.

THE DEFAULT SWEEP: each configuration is the smallest that shows its feature's
bugs (unique states in brackets; the whole sweep: about 2 s of CPU)
  causal                 3 nodes x 1 msg [690]: a causal chain (a -> b's
                         delivery -> b's send -> c) needs three nodes; with two,
                         causal = FIFO
  total-sequencer/-isis  3 nodes x 1 msg [477 / 42,594]: two senders contend
                         at a third replica (ISIS) or at the sequencer
  snapshot               the bank, 2 accounts of 1, one transfer each (1 from
                         account 0: covered; 2 from account 1: overdraws unless
                         account 0's arrived), TWO snapshots, so that concurrent
                         snapshot ids overlap at a replica (shared-channel-closing
                         needs them) [2,947; with one snapshot 306, and that
                         bug unseen]. 2 transfers each: 61,383 states (15,395
                         with --por); 3 accounts: 13 M with --por, about 1 min;
                         8.9 M with --por --sleep, 12-15 s
  snapshot --max-snapshots 1
                         the same bank, each replica refusing a snapshot while
                         one is in progress there: a second start by the same
                         replica is refused (\"snapshots bounded\"; the
                         unbounded-snapshots bug ignores it) [2,114]
  kv --mode M            2 replicas x 2 writes (SET x, then a TRANSFER between
                         accounts of 1: replica 0's covered, replica 1's overdraws
                         unless 0's came first), 1 snapshot, for every mode
                         [1,844 fifo, causal; 6,541 sequencer; 37,498 isis]
  kv --mode causal --nodes 3 --msgs 1 --snapshots 0
                         the causal chain again, through the whole replica [690];
                         with 2 writes 34,043 states, with a snapshot 322,422
  kv --batch 2 --snapshots 0, total-sequencer / total-isis / causal (--msgs 3)
                         a replica multicasts its writes in batches of one or two
                         (it may flush after any write); under causal the writes
                         are blind SETs (a read-modify-write flushes first), so a
                         batch of two needs 3 writes [1,110 / 3,943 / 4,443]
  kv --mode total-sequencer --nodes 3 --msgs 1 --snapshots 0 --link-buffer 1
                         links of one byte: any frame fills one, so writes are
                         refused and the sequencer holds its acks back; \"writes
                         flow when quiet\" checks it lets them go [1,737]
  kv --mode total-sequencer --msgs 1 --snapshots 0 --disconnects 1 --link-buffer 1
                         the same on 2 nodes with a broken connection: \"held
                         acks stay held\" checks a reconnect during the hold does
                         not let a member past it [675]
  refusal                every cast of 3 addresses (a node with the cluster's
                         configuration, a misconfigured one, a stranger) and
                         every order of dials: no node stops while another
                         shares its configuration [371]

MODELS
  causal           vector-clock causal multicast (CBCAST)
  total-sequencer  total order by a fixed sequencer (node 0)
  total-isis       total order by ISIS agreed priorities
  snapshot         Chandy-Lamport snapshots of the bank: replicas moving money
                   with the K/V store's own TRANSFER
  kv               the replicated K/V store over one ordering mode (--mode)
  link             the resumable FIFO link across lossy networks and disconnects
  abort            snapshot abort policy and write replies under crashes, time, disk failures
  refusal          when a refused peer handshake stops a node (wrong secrets, strangers)
  explore MODEL    serve stateright's web explorer for MODEL

BROKEN VARIANTS (--broken): each breaks one assumption or rule on purpose; the
checker must then find a counterexample. See `check MODEL --help` for the list.

SEARCH
  By default the search is depth first, holding only the path it is on, and a
  counterexample it finds is then SHORTENED: breadth-first re-runs with depth
  bounds (a binary search) find the shortest. --bfs explores level by level
  throughout, holding a whole frontier (a few KB per state for kv; it runs with
  the kernel's transparent huge pages off, which fault in slowly and buy a
  frontier little), and re-runs the same way, since stateright keeps the last
  violation it meets. --dfs prints a counterexample as found (a longer story)
  and never re-runs, so a big space never meets a frontier. --simulation SEED
  walks at random until --timeout and never proves anything. Runs over a
  second print progress on stderr.

SYMMETRY (--symmetry, causal only; depth first) explores one state per class
  of states that differ only by node names, renaming every node id in the state
  consistently (vector clocks, message ids, logs, the network's envelopes).
  --compare also runs without it and prints both counts. Counterexamples stay
  concrete paths that replay. Refused where a node id breaks ties:
  total-sequencer  node 0 is the sequencer: nodes are not interchangeable
  total-isis       equal priorities are broken by node id
  kv               last-writer-wins breaks equal Lamport times by node id, and
                   the total modes as above
  snapshot         not even by rotation (node i -> i+r mod n keeps the ring of
                   transfers i -> i+1): the bank runs over a total order, whose
                   sequencer is node 0 or whose ISIS ties go to the lower node
                   id, and a rotation keeps neither; and account i moves
                   amount*(i+1), which differs by account
  link, abort      not attempted (over the kv replica and its faults)
  refusal          not needed (a few hundred states)

POR (--por, snapshot only, ordered channels) is partial-order reduction: in each
  state it takes the steps of the fewest replicas whose channels from all other
  replicas hold a frame (a frame sent later queues behind those, so the other
  replicas' steps commute with theirs), and splits the snapshot budget into
  per-replica quotas up front so that starts commute too. Finer, when that
  leaves more than one step: a silent receipt alone (under the sequencer, the
  data or the number of a replica's next delivery, once that replica will
  record no more snapshots and has no writes left: it sends nothing and
  commutes with the replica's other receipts). Each replica still passes
  through every value of what the properties read (its deliveries in order,
  its parts and recordings), and every final state is reached, so the bank's
  properties (per replica, or stable once a snapshot completes) get the same
  verdicts. And a snapshot is judged at the step that completes its last part,
  the verdicts kept and the parts let go there (not at the commit), so runs that
  recorded differently merge sooner. --compare prints both counts. Refused for
  kv, whose convergence compares two replicas at one moment.
  --sleep adds sleep sets (model/src/sleep.rs; Godefroid 1996, ch. 5): after
  taking steps u then t from a state where they commute, the search does not
  take u after t, since t after u reaches that state. Two replicas' steps
  always commute; two of one replica (a closing marker and a frame on another
  channel, two markers, a write's data and number, the steps finishing two
  snapshots) commute where taking both orders on the replica alone ends alike
  and their order does not show in what the properties read of it, piece by
  piece (its deliveries; each snapshot): at most one of them changes each
  piece, or both change it to one value (two markers of a snapshot it has not
  joined: either opens it, the other closes a channel), so each piece passes
  through the same values in the same order. It runs gsmo's own depth-first
  checker (stateright's take every step offered). It takes a state's steps
  in the order offered, frames in flight before a replica's new writes and
  snapshots (8.7% fewer states than the reverse). On the 3-account bank with
  2 snapshots: 68.4 M -> 43.9 M states, 241 s -> 49-63 s on 2 threads
  (built with --profile release-lto, as bench/check.sh does; 6-7% slower
  with --release).
  Depth first on more than one thread, each split of the budget into quotas is
  a part of its own (a quota never changes, so no state is in two parts):
  each thread checks the next part alone, largest first, and the counts add
  up exactly. stateright's own threads share their visited set and states and
  lose over a quarter of the second core to it; parts share nothing.

NO VACUOUS VERDICTS
  A sometimes-property is an example the model must reach (a snapshot that
  records a transfer in flight, an overdraft refused, two snapshots in progress
  at once). If a complete run finds none, that part of the model never ran and
  the run is a FAIL. A --broken run is caught only if the property the variant
  promises (\"must violate ...\" in its title) is violated; violating other
  properties instead is reported as NOT CAUGHT.

PATHS FOR THE REAL CODE (--save-path FILE; kv, snapshot and abort)
  writes the variant's counterexample, else a random walk seeded by GSMO_SEED
  (or, with --explorer-path, the path you chose in `check explore` with the
  same model options: its URL),
  as spec steps; `sim --replay FILE` drives the real event loops along it. Only
  these models run whole spec replicas; link runs bare spec links and causal /
  total-* a bare multicast, which the real node only runs inside a replica:
  kv over those modes (and --disconnects, for the link) replays them there.

EXIT STATUS
  0  every property held and every example was found
  1  a property was violated or an example is missing. With --broken this is
     the expected outcome: the variant was caught by its promised property
  2  bad arguments
  3  a --broken variant was NOT caught: its promised property held
  4  INCOMPLETE: nothing was violated, but not every state was explored
     (--timeout, --depth or --simulation stopped the search): not a proof

EXAMPLES
  check                                       every model, default configuration
  check causal --nodes 3 --msgs 2 --network unordered
  check causal --broken fifo-only             watch FIFO-only delivery break causality
  check total-isis --broken no-tie-break --dfs
  check snapshot --nodes 3 --threads 2
  check kv --mode total-isis --broken no-tie-break
  check kv --mode causal --broken delivery-order --msgs 1 --snapshots 0
  check kv --mode total-sequencer --broken no-channel-recording
  check snapshot --nodes 3 --timeout 600
  check causal --simulation 7 --timeout 5     random walks instead of exhaustive search
  check link --nodes 3 --msgs 1 --broken resume-off-by-one
  check explore snapshot --addr 127.0.0.1:3000";
