// Tests read JSON bodies loosely and assert on their shape; give fetch's json() an `any` overload.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseJson = any;
interface Response {
  json(): Promise<LooseJson>;
}
