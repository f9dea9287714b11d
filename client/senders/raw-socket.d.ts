// The raw-socket package ships no types; this covers the part tknock uses.
declare module "raw-socket" {
  import type { EventEmitter } from "node:events";

  interface RawSocket extends EventEmitter {
    send(buffer: Buffer, offset: number, length: number, address: string, afterCallback: (error: Error | null, bytes: number) => void): RawSocket;
    pauseRecv(): RawSocket;
    close(): RawSocket;
  }

  interface RawSocketModule {
    readonly AddressFamily: { readonly IPv4: number; readonly IPv6: number };
    readonly Protocol: { readonly TCP: number; readonly UDP: number };
    createSocket(options: { addressFamily?: number; protocol?: number; bufferSize?: number }): RawSocket;
  }

  const raw: RawSocketModule;
  export = raw;
}
