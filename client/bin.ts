#!/usr/bin/env node
import { processIo, runCli } from "../src/cli-io.js";
import { createClientCli } from "./cli.js";
import { CLIENT_PERMISSION_FIX } from "./store-errors.js";

const io = processIo();
process.exitCode = await runCli(createClientCli(io), process.argv.slice(2), io, { permissionFix: CLIENT_PERMISSION_FIX });
