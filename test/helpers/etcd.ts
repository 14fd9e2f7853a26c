// etcd for the fleet tests: see src/lab/etcd.ts (bench:etcd uses it too).
export { addressTheSwitch, makePki, startEtcd, type EtcdInstance, type EtcdTlsFiles, type TestPki } from '../../src/lab/etcd';
