import type { Command } from "commander";
import { loadServerConfig } from "../config/load.js";
import { DEFAULT_CONFIG_PATH, type ServerConfig } from "../config/schema.js";

/** The --config path given anywhere on the command line (a global option). */
export function configPathOf(cmd: Command): string {
  const opts = cmd.optsWithGlobals<{ config?: string }>();
  return opts.config ?? DEFAULT_CONFIG_PATH;
}

export function loadConfigOf(cmd: Command): { path: string; config: ServerConfig } {
  const path = configPathOf(cmd);
  return { path, config: loadServerConfig(path) };
}
