// Running a command as a user who is not root, for the tests' "not root"
// cases, wherever the checkout is. A plain `runuser -u nobody` cannot even
// start node where the checkout (a clone under /root, mode 0700) or the root
// directory itself (a chroot made by mktemp) is closed to other users; a real
// user runs an installation they can read. So the command runs as nobody
// with one capability, CAP_DAC_READ_SEARCH: it may read and traverse any
// file, nothing else (no writes, no CAP_NET_ADMIN, uid not 0). The securebit
// no_setuid_fixup makes access(2) (fs.existsSync) honour that capability
// too, as open and stat do; without it access() drops every capability of a
// process whose real uid is not 0.

export const NOBODY_UID = 65534;

/** Prefix for argv: runs the rest as nobody who can read files. */
export const AS_UNPRIVILEGED_READER = [
  'setpriv',
  `--reuid=${NOBODY_UID}`,
  `--regid=${NOBODY_UID}`,
  '--clear-groups',
  '--inh-caps=-all,+dac_read_search',
  '--ambient-caps=+dac_read_search',
  '--securebits=+no_setuid_fixup',
  '--',
];
